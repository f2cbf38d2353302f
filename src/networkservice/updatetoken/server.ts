/**
 * updatetoken server (NSM common/updatetoken): on Request and Close, records the caller's token
 * and expiry on the previous path segment and this hop's own token on its own segment.
 * Placement: after updatepath and begin, before timeout (which reads the previous expiry).
 *
 * `trustLocalCallers`: a caller without a TLS identity (a plain NSM client on the local unix
 * socket, or an in-process hop) is vouched for by this agent: the previous segment gets a token
 * signed here on the caller's behalf (`sub` and `aud` this agent's ID, `self`), so the token
 * chain stays valid for the hops after this one, and an expiry of the caller's own token's
 * expiry, or now + the token lifetime if it sent none, so the connection still ends if that
 * client stops refreshing.
 */
import type { Connection } from '../../api';
import { toTimestamp, fromTimestamp } from '../../api/time';
import { NetworkServiceServer, nextServer } from '../../core/networkservice';
import { Ctx } from '../../core/ctx';
import { INCOMING_TOKEN, TokenSource } from '../../core/token';
import { PEER } from '../../spire/peer';
import { clone } from '../../api/clone';

export function updateTokenServer(
  tokens: TokenSource,
  opts: { trustLocalCallers?: boolean; self?: () => string | undefined } = {},
): NetworkServiceServer {
  const apply = (ctx: Ctx, conn: Connection): Connection => {
    const out = clone(conn);
    const path = out.path ?? { index: 0, path_segments: [] };
    const segs = path.path_segments ?? [];
    const index = path.index ?? 0;
    const now = ctx.clock.now();
    const prev = index > 0 ? segs[index - 1] : undefined;
    if (prev) {
      const incoming = ctx.get(INCOMING_TOKEN);
      if (opts.trustLocalCallers && !ctx.get(PEER)) {
        const own = tokens.generate(now, opts.self?.());
        prev.token = own.token;
        prev.expires = toTimestamp(incoming?.expires ?? Math.max(fromTimestamp(prev.expires) ?? 0, own.expires));
      } else if (incoming) {
        prev.token = incoming.token;
        prev.expires = toTimestamp(incoming.expires);
      } else {
        ctx.log.warn('no token from the previous hop', { id: out.id });
      }
    }
    const self = segs[index];
    if (self) {
      // Addressed to the caller authenticated by mTLS (none on the unix socket), as upstream.
      const peer = ctx.get(PEER);
      const t = tokens.generate(now, peer?.id, peer);
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
