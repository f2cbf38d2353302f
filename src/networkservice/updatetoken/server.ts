/**
 * updatetoken server (NSM common/updatetoken): on Request and Close, records the caller's token
 * and expiry on the previous path segment and this hop's own token on its own segment.
 * Placement: after updatepath and begin, before timeout (which reads the previous expiry).
 *
 * `trustLocalCallers`: a caller that sent no token (a plain NSM client on the local unix
 * socket) gets a previous-segment expiry of now + the token lifetime, so the connection still
 * ends if that client stops refreshing.
 */
import type { Connection } from '../../api';
import { toTimestamp, fromTimestamp } from '../../api/time';
import { NetworkServiceServer, nextServer } from '../../core/networkservice';
import { Ctx } from '../../core/ctx';
import { INCOMING_TOKEN, TokenSource } from './token';

export function updateTokenServer(tokens: TokenSource, opts: { trustLocalCallers?: boolean } = {}): NetworkServiceServer {
  const apply = (ctx: Ctx, conn: Connection): Connection => {
    const out = structuredClone(conn);
    const path = out.path ?? { index: 0, path_segments: [] };
    const segs = path.path_segments ?? [];
    const index = path.index ?? 0;
    const now = ctx.clock.now();
    const prev = index > 0 ? segs[index - 1] : undefined;
    if (prev) {
      const incoming = ctx.get(INCOMING_TOKEN);
      if (incoming) {
        prev.token = incoming.token;
        prev.expires = toTimestamp(incoming.expires);
      } else if (opts.trustLocalCallers) {
        const own = tokens.generate(now);
        if (!fromTimestamp(prev.expires)) prev.expires = toTimestamp(own.expires);
        else prev.expires = toTimestamp(Math.max(fromTimestamp(prev.expires) ?? 0, own.expires));
      } else {
        ctx.log.warn('no token from the previous hop', { id: out.id });
      }
    }
    const self = segs[index];
    if (self) {
      const t = tokens.generate(now, prev?.name);
      self.token = t.token;
      self.expires = toTimestamp(t.expires);
    }
    return out;
  };
  return {
    request: (ctx, req) => nextServer(ctx).request(ctx, { ...req, connection: apply(ctx, req.connection ?? {}) }),
    close: (ctx, conn) => nextServer(ctx).close(ctx, apply(ctx, conn)),
  };
}
