/**
 * monitor server (NSM common/monitor): keeps a MonitorHub in step with the chain.
 * - After every successful Request: UPDATE with the full connection (as returned here).
 * - A failed Request for a connection the hub knows (a refresh): UPDATE with state DOWN.
 * - On Close (even if the rest of the chain fails): DELETE.
 *
 * Placement: after begin and metadata, before the elements that build the connection
 * (it publishes what they return). The hub is keyed by the connection id at this position,
 * that is this hop's id.
 */
import { NetworkServiceServer, nextServer } from '../../core/networkservice';
import type { MonitorHub } from './hub';

export function monitorServer(hub: MonitorHub): NetworkServiceServer {
  return {
    async request(ctx, req) {
      const id = req.connection?.id ?? '';
      try {
        const conn = await nextServer(ctx).request(ctx, req);
        hub.update(conn);
        return conn;
      } catch (err) {
        const known = hub.get(id);
        if (known) hub.update({ ...known, state: 'DOWN' });
        throw err;
      }
    },
    async close(ctx, conn) {
      try {
        await nextServer(ctx).close(ctx, conn);
      } finally {
        hub.delete(conn);
      }
    },
  };
}
