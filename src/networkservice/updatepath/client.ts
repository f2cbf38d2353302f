/**
 * updatepath client: the same path algorithm as the server (common.ts), for a client chain.
 * A client chain nested in a server chain with the same name shares the server's segment
 * (rule 1: the current segment already has this name).
 *
 * Placement: first in a client chain, before begin.
 */
import type { Connection, NetworkServiceRequest } from '../../api';
import type { Ctx } from '../../core/ctx';
import { NetworkServiceClient, nextClient } from '../../core/networkservice';
import { restoreCaller, updatePath, UpdatePathOptions } from './common';

export function updatePathClient(name: string, opts: UpdatePathOptions = {}): NetworkServiceClient {
  return {
    async request(ctx: Ctx, req: NetworkServiceRequest): Promise<Connection> {
      const callerId = req.connection?.id;
      const { conn, callerIndex } = updatePath(req.connection ?? {}, name, opts);
      const out = await nextClient(ctx).request(ctx, { ...req, connection: conn });
      return restoreCaller(out, callerIndex, callerId || (callerIndex === 0 ? conn.id : undefined));
    },
    async close(ctx: Ctx, conn: Connection): Promise<void> {
      const updated = updatePath(conn, name, opts);
      await nextClient(ctx).close(ctx, updated.conn);
    },
  };
}
