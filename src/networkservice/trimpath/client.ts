/**
 * trimpath client: after a successful Request to the next hop, tells the trimpath server of
 * the same chain not to cut the path (see context.ts). Without a trimpath server before it,
 * it does nothing.
 *
 * Placement: in the client chain that a server chain continues into, before the element that
 * calls the next hop (NSM puts it just before connect).
 */
import { NetworkServiceClient, nextClient } from '../../core/networkservice';
import { markNextHop } from './context';

export function trimPathClient(): NetworkServiceClient {
  return {
    async request(ctx, req) {
      const conn = await nextClient(ctx).request(ctx, req);
      markNextHop(ctx);
      return conn;
    },
    close: (ctx, conn) => nextClient(ctx).close(ctx, conn),
  };
}
