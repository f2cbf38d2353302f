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
 * Fails with UNAVAILABLE until every family has its first prefix.
 * Placement: in a vL3 endpoint chain, before the KERNEL endpoint side.
 */
import type { Connection, IPContext, Route } from '../../../api';
import { clone } from '../../../api/clone';
import { AgentError } from '../../../core/errors';
import { NetworkServiceServer, nextServer } from '../../../core/networkservice';
import { clampContextMtu, minMtu } from '../../../mechanisms/tunnel/params';
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
}

export interface Vl3Server extends NetworkServiceServer {
  /** Lowers the MTU to `mtu` if it is lower, and pushes it to every connection served. */
  lower(mtu: number): void;
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
  return {
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
      for (const pool of pools) {
        const mine = given.filter((a) => familyOf(a) === pool.family);
        const peer = mine.length > 0 && mine.every((a) => !pool.inPrefix(a));
        const src = peer ? mine : [pool.allocate(id, mine[0])];
        ipc.src_ip_addrs!.push(...src);
        ipc.dst_ip_addrs!.push(pool.self!);
        addRoute(ipc.src_routes!, pool.self!, pool.selfIp);
        addRoute(ipc.src_routes!, pool.prefix!, pool.selfIp);
        for (const a of src) addRoute(ipc.dst_routes!, a);
      }
      conn.context.ip_context = ipc;
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
      if (lowest && lowest < (before ?? Infinity)) pushLowest(id);
      return out;
    },
    async close(ctx, conn) {
      try {
        await nextServer(ctx).close(ctx, conn);
      } finally {
        served.delete(conn.id ?? '');
        for (const pool of pools) pool.release(conn.id ?? '');
      }
    },
  };
}
