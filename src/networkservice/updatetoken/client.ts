/**
 * updatetoken client for in-process hops: sets this hop's token and expiry on its own segment
 * and hands the token to the next server through the Ctx, as gRPC headers would.
 * Placement: in a client chain that calls a server chain in-process, after updatepath.
 */
import { toTimestamp } from '../../api/time';
import { NetworkServiceClient, nextClient } from '../../core/networkservice';
import { INCOMING_TOKEN, TokenSource } from '../../core/token';
import { clone } from '../../api/clone';

export function updateTokenClient(tokens: TokenSource): NetworkServiceClient {
  return {
    async request(ctx, req) {
      const conn = clone(req.connection ?? {});
      const t = tokens.generate(ctx.clock.now());
      const seg = conn.path?.path_segments?.[conn.path.index ?? 0];
      if (seg) {
        seg.token = t.token;
        seg.expires = toTimestamp(t.expires);
      }
      return nextClient(ctx).request(ctx.with(INCOMING_TOKEN, t), { ...req, connection: conn });
    },
    close(ctx, conn) {
      return nextClient(ctx).close(ctx.with(INCOMING_TOKEN, tokens.generate(ctx.clock.now())), conn);
    },
  };
}
