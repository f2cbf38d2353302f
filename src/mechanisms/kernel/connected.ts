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

/**
 * The namespace's connected prefixes but for those of interface `skipIfname` and the addresses
 * in `known` (given by the caller, e.g. its connections' own: they need no interface name).
 * One address dump, and one link lookup per interface left to name.
 */
export async function connectedPrefixes(netns: string, skipIfname?: string, known: ReadonlySet<string> = new Set()): Promise<ConnectedPrefix[]> {
  const ns = requireNetns(netns);
  try {
    const rtnl = sys.Rtnl.for(ns);
    const [own, addrs] = await Promise.all([skipIfname ? sys.getLink(rtnl, skipIfname) : undefined, sys.listAddresses(rtnl)]);
    const found: { prefix: string; index: number }[] = [];
    for (const a of addrs) {
      if (a.index === own?.index || known.has(a.cidr)) continue;
      const p = parsePrefix(a.cidr);
      if (!p || LEFT_OUT.some((x) => within(x, p))) continue;
      const prefix = formatPrefix(masked(p));
      if (!found.some((o) => o.prefix === prefix)) found.push({ prefix, index: a.index });
    }
    const names = new Map<number, string>();
    for (const index of new Set(found.map((f) => f.index))) names.set(index, (await sys.getLink(rtnl, index))?.name ?? `ifindex ${index}`);
    return found.map((f) => ({ prefix: f.prefix, ifname: names.get(f.index)! }));
  } finally {
    ns.close();
  }
}
