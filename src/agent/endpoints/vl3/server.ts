/**
 * vl3 server element (a vL3 endpoint's chain): fills the IP context as NSM's vl3 server and
 * strictvl3ipam do, for each address family the endpoint leased a prefix of:
 * - a request whose dst addresses are not this endpoint's own (a client healing over from
 *   another endpoint, or a lease that changed) starts over with an empty IP context;
 * - a client (no src address of the family, or one inside this endpoint's prefix) gets one
 *   host address of the prefix, the one it asks for when free: a refresh, or the first
 *   request after an agent restart, keeps its address;
 * - another vL3 endpoint (a src address outside this prefix: its own address) gets none; the
 *   routes to its prefix that it sends in dst_routes are kept;
 * - src_routes: this endpoint's address, its prefix via it, and (on the way back) the whole
 *   network via it; dst_routes: each src address, on-link.
 * MTU, as upstream's vl3mtu: every connection's MTU is clamped to the lowest seen on the
 * endpoint (from the host's WireGuard vWires on, and lowered by any request that comes with a
 * smaller one, e.g. a peer's over a narrower path), so members never send more than the mesh
 * between the routers carries. When a successful Request lowers it, every other connection
 * served with a higher MTU is pushed to Request again (opts.refresh: a monitor event with
 * state REFRESH_REQUESTED), and gets the lower one on that Request. lower() does the same for
 * an MTU found elsewhere: the answer of a peer this endpoint connects to (upstream's vl3mtu
 * client side), whose path may be narrower than any request seen here.
 * DNS, as upstream's vl3dns: a client's connection carries a DNS config naming this endpoint's
 * own addresses with the service as search domain (opts.dnsConfig; a stale one for the
 * service, from an address this endpoint no longer has, is replaced), and its addresses are
 * named after its `podName` label in opts.names while it is served. Peers get neither; their
 * own addresses are kept for forwarding DNS queries (peerAddresses()).
 * Fails with UNAVAILABLE until every family has its first prefix.
 * Placement: in a vL3 endpoint chain, before the KERNEL endpoint side.
 */
import type { Connection, DNSConfig, IPContext, Route } from '../../../api';
import { clone } from '../../../api/clone';
import { AgentError } from '../../../core/errors';
import { NetworkServiceServer, nextServer } from '../../../core/networkservice';
import { clampContextMtu, minMtu } from '../../../mechanisms/tunnel/params';
import { sameDnsConfig } from '../../../networkservice/dnscontext';
import type { MemberNames } from './names-dns';
import type { Vl3Pool } from './pool';

function familyOf(addr: string): 4 | 6 {
  return addr.includes(':') ? 6 : 4;
}

function addRoute(routes: Route[], prefix: string, nextHop = ''): void {
  if (!routes.some((r) => r.prefix === prefix)) routes.push({ prefix, nextHop });
}

export interface Vl3ServerOptions {
  /** The MTU of the host's vWires to other hosts (undefined: none). */
  mtu?: () => number | undefined;
  /** Asks the client of a connection served here (as last answered) to Request it again. */
  refresh?: (conn: Connection) => void;
  /** The DNS config clients get (undefined: none). */
  dnsConfig?: () => DNSConfig | undefined;
  /** Where clients' names go. */
  names?: MemberNames;
}

export interface Vl3Server extends NetworkServiceServer {
  /** Lowers the MTU to `mtu` if it is lower, and pushes it to every connection served. */
  lower(mtu: number): void;
  /** The own addresses of the peer endpoints that connect to this one. */
  peerAddresses(): string[];
}

/** The connection's DNS configs with `config` in place of any other for the same search domains. */
function withDnsConfig(conn: Connection, config: DNSConfig): void {
  const search = config.search_domains ?? [];
  const others = (conn.context?.dns_context?.configs ?? []).filter(
    (c) => !sameDnsConfig({ search_domains: c.search_domains }, { search_domains: search }) || sameDnsConfig(c, config),
  );
  if (!others.some((c) => sameDnsConfig(c, config))) others.push({ dns_server_ips: [...(config.dns_server_ips ?? [])], search_domains: [...search] });
  (conn.context ??= {}).dns_context = { configs: others };
}

export function vl3Server(pools: Vl3Pool[], opts: Vl3ServerOptions = {}): Vl3Server {
  let lowest: number | undefined;
  /** The connections served, as last answered (path and MTU only), by id. */
  const served = new Map<string, Connection>();
  /** Pushes a refresh to every other connection served with an MTU above the lowest. */
  const pushLowest = (except: string) => {
    if (!opts.refresh || !lowest) return;
    for (const [id, conn] of served) {
      const mtu = conn.context?.MTU;
      if (id === except || (mtu && mtu <= lowest)) continue;
      opts.refresh(clone(conn));
    }
  };
  const isOwnAddress = (addr: string) => pools.some((p) => p.isSelf(addr));
  /** Own addresses of the peers served, by connection id. */
  const peers = new Map<string, string[]>();
  return {
    peerAddresses: () => [...peers.values()].flat(),
    lower(mtu) {
      const next = minMtu(lowest, opts.mtu?.(), mtu);
      if (next === lowest) return;
      lowest = next;
      pushLowest('');
    },
    async request(ctx, req) {
      if (!pools.every((p) => p.initialized)) throw new AgentError('UNAVAILABLE', 'vL3 prefix pool is initializing');
      const conn: Connection = clone(req.connection ?? {});
      const id = conn.id ?? '';
      const before = lowest;
      lowest = minMtu(lowest, opts.mtu?.(), conn.context?.MTU);
      if (lowest) clampContextMtu(conn, lowest);
      const asked: IPContext = ((conn.context ??= {}).ip_context ??= {});
      const stale = (asked.dst_ip_addrs ?? []).some((a) => !isOwnAddress(a));
      const given = stale ? [] : (asked.src_ip_addrs ?? []);
      const ipc: IPContext = { excluded_prefixes: asked.excluded_prefixes ?? [], src_ip_addrs: [], dst_ip_addrs: [], src_routes: [], dst_routes: [] };
      for (const route of stale ? [] : (asked.dst_routes ?? [])) {
        // A peer endpoint's routes to itself and its prefix; client routes are made anew below.
        if (route.prefix && !pools.some((p) => p.inPrefix(route.prefix!))) addRoute(ipc.dst_routes!, route.prefix, route.nextHop ?? '');
      }
      let isPeer = false;
      for (const pool of pools) {
        const mine = given.filter((a) => familyOf(a) === pool.family);
        const peer = mine.length > 0 && mine.every((a) => !pool.inPrefix(a));
        isPeer ||= peer;
        const src = peer ? mine : [pool.allocate(id, mine[0])];
        ipc.src_ip_addrs!.push(...src);
        ipc.dst_ip_addrs!.push(pool.self!);
        addRoute(ipc.src_routes!, pool.self!, pool.selfIp);
        addRoute(ipc.src_routes!, pool.prefix!, pool.selfIp);
        for (const a of src) addRoute(ipc.dst_routes!, a);
      }
      conn.context.ip_context = ipc;
      const dns = isPeer ? undefined : opts.dnsConfig?.();
      if (dns) withDnsConfig(conn, dns);
      let out: Connection;
      try {
        out = await nextServer(ctx).request(ctx, { ...req, connection: conn });
      } catch (err) {
        if (!asked.src_ip_addrs?.length || stale) for (const pool of pools) pool.release(id);
        throw err;
      }
      const routes = (((out.context ??= {}).ip_context ??= {}).src_routes ??= []);
      for (const pool of pools) addRoute(routes, pool.global!, pool.selfIp);
      // The lowest may have dropped while this request was in the chain (a peer's answer): the
      // answer carries it, so that the vWire is made with it (no push reaches a connection that
      // is not served yet).
      if (lowest) clampContextMtu(out, lowest);
      served.set(id, { id, path: clone(out.path ?? {}), context: { MTU: out.context.MTU ?? 0 } });
      const addrs = (ipc.src_ip_addrs ?? []).map((a) => a.replace(/\/\d+$/, ''));
      if (isPeer) peers.set(id, addrs);
      else opts.names?.set(id, out.labels?.['podName'] ?? conn.labels?.['podName'], addrs);
      if (lowest && lowest < (before ?? Infinity)) pushLowest(id);
      return out;
    },
    async close(ctx, conn) {
      try {
        await nextServer(ctx).close(ctx, conn);
      } finally {
        served.delete(conn.id ?? '');
        peers.delete(conn.id ?? '');
        opts.names?.delete(conn.id ?? '');
        for (const pool of pools) pool.release(conn.id ?? '');
      }
    },
  };
}
