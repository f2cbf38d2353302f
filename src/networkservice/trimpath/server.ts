/**
 * trimpath server (NSM common/trimpath): the last server of a path cuts path_segments after its
 * own index on the way back, so stale tail segments of an older, longer path disappear.
 * A server that continues to a next hop is not the last one: its trimpath client (or connect,
 * through markNextHop) says so, and the path is left as the next hop returned it.
 *
 * Placement: after updatepath (it uses this hop's path.index) in any server chain; with a
 * trimpath client (or markNextHop) in the part of the chain that reaches the next hop.
 */
import type { Connection } from '../../api';
import { NetworkServiceServer, nextServer } from '../../core/networkservice';
import { indexOf } from '../utils';
import { NextHopFlag, withNextHopFlag } from './context';

export function trimPath(conn: Connection): Connection {
  const segs = conn.path?.path_segments;
  if (!segs) return conn;
  const index = indexOf(conn);
  if (segs.length <= index + 1) return conn;
  return { ...conn, path: { ...conn.path, index, path_segments: segs.slice(0, index + 1) } };
}

export function trimPathServer(): NetworkServiceServer {
  return {
    async request(ctx, req) {
      const flag: NextHopFlag = { hasNextHop: false };
      const conn = await nextServer(ctx).request(withNextHopFlag(ctx, flag), req);
      return flag.hasNextHop ? conn : trimPath(conn);
    },
    close: (ctx, conn) => nextServer(ctx).close(ctx, conn),
  };
}
