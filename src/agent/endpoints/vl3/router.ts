/**
 * The kernel router of a vL3 endpoint: a network namespace where every client's and every
 * peer endpoint's vWire ends, with forwarding on and the endpoint's own addresses on its
 * loopback, so packets between members only ever cross the kernel (a Linux router, as an
 * NSM maintainer sketched a kernel vL3 in deployments-k8s#10488).
 * By default the agent makes the namespace (`nsm-vl3-<endpoint>`) and removes it with the
 * endpoint; a named namespace or `host` is used as it is (it must exist) and left in place.
 */
import { AgentError } from '../../../core/errors';
import type { Logger } from '../../../core/log';
import * as sys from '../../../sys';
import { routerNetnsName } from './names';


export class Router {
  /** The own addresses now on loopback (host prefixes). */
  private addresses: string[] = [];

  private constructor(
    readonly netnsPath: string,
    /** The namespace name when the agent made it (removed with the endpoint). */
    readonly owned: string | undefined,
    private readonly log: Logger,
  ) {}

  /**
   * Opens the router: makes the agent's own namespace when `netns` is absent (or takes back
   * the one a previous run made), else checks that the named one exists. Turns forwarding on.
   */
  static async open(endpoint: string, netns: string | undefined, log: Logger): Promise<Router> {
    let owned: string | undefined;
    let ns: sys.Netns;
    if (netns === undefined) {
      owned = routerNetnsName(endpoint);
      ns = sys.listNetns().includes(owned) ? sys.openNetns(owned) : await sys.createNetns(owned);
    } else {
      const path = netns === 'host' ? '/proc/self/ns/net' : sys.netnsPath(netns);
      try {
        ns = sys.openNetns(path);
      } catch (err) {
        throw new AgentError('NETNS_NOT_FOUND', `vL3 endpoint ${endpoint}: network namespace ${netns} does not exist`, { cause: err });
      }
    }
    try {
      const rtnl = sys.Rtnl.for(ns);
      const lo = await sys.getLink(rtnl, 'lo');
      if (lo) await sys.setLinkUp(rtnl, lo.index, true);
      sys.setSysctl(ns, 'net.ipv4.ip_forward', '1');
      sys.setSysctl(ns, 'net.ipv6.conf.all.forwarding', '1');
      sys.setSysctl(ns, 'net.ipv6.conf.lo.disable_ipv6', '0');
    } catch (err) {
      ns.close();
      if (owned) await sys.deleteNetns(owned).catch(() => {});
      throw AgentError.wrap(err, `vL3 endpoint ${endpoint}: prepare the router namespace`, 'DATAPLANE');
    }
    const router = new Router(owned ? sys.netnsPath(owned) : ns.path, owned, log);
    ns.close();
    return router;
  }

  /** Puts exactly `addresses` (host prefixes: the endpoint's own) on the router's loopback. */
  async setAddresses(addresses: string[]): Promise<void> {
    const ns = sys.openNetns(this.netnsPath);
    try {
      const rtnl = sys.Rtnl.for(ns);
      const lo = await sys.getLink(rtnl, 'lo');
      if (!lo) throw new AgentError('DATAPLANE', `no loopback in ${this.netnsPath}`);
      const present = new Set((await sys.listAddresses(rtnl, lo.index)).map((a) => a.cidr));
      for (const a of this.addresses) {
        if (!addresses.includes(a) && present.has(a)) await sys.delAddress(rtnl, lo.index, a).catch(() => {});
      }
      for (const a of addresses) {
        if (!present.has(a)) await sys.addAddress(rtnl, lo.index, a, { noDad: a.includes(':') });
      }
      this.addresses = [...addresses];
      this.log.debug('vL3 router addresses', { netns: this.netnsPath, addresses: addresses.join(',') });
    } finally {
      ns.close();
    }
  }

  /** Removes the namespace the agent made (with every vWire end in it); a named one stays. */
  async remove(): Promise<void> {
    if (this.owned) await sys.deleteNetns(this.owned).catch(() => {});
  }
}

/** Removes the router namespace the agent made for `endpoint`, if it is there. */
export async function removeRouterNetns(endpoint: string): Promise<void> {
  const name = routerNetnsName(endpoint);
  if (sys.listNetns().includes(name)) await sys.deleteNetns(name);
}
