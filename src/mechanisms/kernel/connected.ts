/**
 * The prefixes a network namespace is connected to: each address of its interfaces with its
 * prefix length, as a network prefix (10.0.0.5/24 is 10.0.0.0/24), named by its interface.
 * Loopback and IPv6 link-local addresses are left out: no pool hands them out.
 */
import * as sys from '../../sys';
import { formatPrefix, masked, parsePrefix, within } from '../../networkservice/ipam/cidr';
import { requireNetns } from './vwire';

export interface ConnectedPrefix {
  prefix: string;
  ifname: string;
}

const LEFT_OUT = ['127.0.0.0/8', '::1/128', 'fe80::/10'].map((p) => parsePrefix(p)!);

export async function connectedPrefixes(netns: string, skipIfname?: string): Promise<ConnectedPrefix[]> {
  const ns = requireNetns(netns);
  try {
    const rtnl = sys.Rtnl.for(ns);
    const [links, addrs] = await Promise.all([sys.listLinks(rtnl), sys.listAddresses(rtnl)]);
    const names = new Map(links.map((l) => [l.index, l.name]));
    const out: ConnectedPrefix[] = [];
    for (const a of addrs) {
      const ifname = names.get(a.index) ?? String(a.index);
      if (ifname === skipIfname) continue;
      const p = parsePrefix(a.cidr);
      if (!p || LEFT_OUT.some((x) => within(x, p))) continue;
      const prefix = formatPrefix(masked(p));
      if (!out.some((o) => o.prefix === prefix)) out.push({ prefix, ifname });
    }
    return out;
  } finally {
    ns.close();
  }
}
