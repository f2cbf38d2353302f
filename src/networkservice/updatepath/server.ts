/**
 * updatepath server: records this hop in Connection.path and gives the rest of the chain this
 * hop's connection id; the caller gets back its own id and path.index.
 *
 * Placement: first in a server chain, before begin (begin keys its state by the id set here).
 * The algorithm is described in common.ts.
 */
import type { Connection, NetworkServiceRequest } from '../../api';
import type { Ctx } from '../../core/ctx';
import { NetworkServiceServer, nextServer } from '../../core/networkservice';
import { restoreCaller, updatePath, UpdatePathOptions } from './common';

export function updatePathServer(name: string, opts: UpdatePathOptions = {}): NetworkServiceServer {
  return {
    async request(ctx: Ctx, req: NetworkServiceRequest): Promise<Connection> {
      const callerId = req.connection?.id;
      const { conn, callerIndex } = updatePath(req.connection ?? {}, name, opts);
      const out = await nextServer(ctx).request(ctx, { ...req, connection: conn });
      return restoreCaller(out, callerIndex, callerId || (callerIndex === 0 ? conn.id : undefined));
    },
    async close(ctx: Ctx, conn: Connection): Promise<void> {
      const updated = updatePath(conn, name, opts);
      await nextServer(ctx).close(ctx, updated.conn);
    },
  };
}
