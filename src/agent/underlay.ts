/**
 * The underlay: the address other hosts reach this agent's tunnels at (`tunnelIP` in
 * agent.yaml) and the MTU of the interface holding it. `auto` takes the address of the
 * interface with the default route (IPv4 first, then IPv6), as NSM's forwarder does.
 */
import { AgentError } from '../core/errors';
import type { Underlay } from '../mechanisms/tunnel/params';
import * as sys from '../sys';

function isGlobal(a: sys.AddressInfo): boolean {
  if (a.family === 4) return !a.address.startsWith('127.');
  return !(a.address === '::1' || a.address.toLowerCase().startsWith('fe80:'));
}

export async function resolveUnderlay(tunnelIP: string): Promise<Underlay> {
  const rtnl = sys.Rtnl.for(sys.hostNetns());
  const addrs = await sys.listAddresses(rtnl);
  let found: sys.AddressInfo | undefined;
  if (tunnelIP === 'auto') {
    for (const family of [4, 6] as const) {
      const routes = await sys.listRoutes(rtnl, family);
      const def = routes.find((r) => r.dst === (family === 4 ? '0.0.0.0/0' : '::/0') && r.index !== undefined);
      if (!def) continue;
      found = addrs.find((a) => a.index === def.index && a.family === family && isGlobal(a));
      if (found) break;
    }
    if (!found) throw new AgentError('FAILED_PRECONDITION', 'tunnelIP auto: no interface with a default route and an address; set tunnelIP in agent.yaml');
  } else {
    found = addrs.find((a) => a.address === tunnelIP);
    if (!found) throw new AgentError('FAILED_PRECONDITION', `tunnelIP ${tunnelIP} is not an address of this host`);
  }
  const link = await sys.getLink(rtnl, found.index);
  if (!link) throw new AgentError('FAILED_PRECONDITION', `the interface of ${found.address} vanished`);
  return { ip: found.address, family: found.family, mtu: link.mtu };
}
