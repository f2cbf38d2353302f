/**
 * authorize client (NSM authorize.NewClient: common + next_token_signed). Placement: in a
 * client chain after updatepath and updatetoken, before the element that makes the gRPC call.
 *
 * It puts an empty PeerSlot under Ctx key SERVER_PEER (src/spire/peer.ts) and calls on; the
 * gRPC glue fills `slot.peer` with the server it reached over mTLS. On the way back the
 * policies run on segments 0..index+1 with that server as the peer: the server's token must be
 * signed by the key of the certificate it presented. If they refuse, the new connection is
 * closed again (best effort) and the Request fails with PERMISSION_DENIED. An empty slot
 * (in-process hop, no TLS) skips the check. Close is passed through.
 */
import type { Connection } from '../../api';
import { AgentError } from '../../core/errors';
import { NetworkServiceClient, nextClient } from '../../core/networkservice';
import { PeerSlot, SERVER_PEER } from '../../spire/peer';
import { CLIENT_POLICIES, evaluate, Policy } from './policies';

export interface AuthorizeClientOptions {
  policies?: readonly Policy[];
  self?: () => string | undefined;
}

function window(conn: Connection): { index: number; tokens: string[] } {
  const index = conn.path?.index ?? 0;
  const segs = conn.path?.path_segments ?? [];
  return { index, tokens: segs.slice(0, index + 2).map((s) => s.token ?? '') };
}

export function authorizeClient(opts: AuthorizeClientOptions = {}): NetworkServiceClient {
  const policies = opts.policies ?? CLIENT_POLICIES;
  return {
    async request(ctx, req) {
      const slot: PeerSlot = {};
      const inner = ctx.with(SERVER_PEER, slot);
      const conn = await nextClient(inner).request(inner, req);
      const peer = slot.peer;
      if (!peer) return conn;
      const why = evaluate(policies, { ...window(conn), peer, now: ctx.clock.now() });
      if (why === undefined) return conn;
      let self = 'this agent';
      try {
        self = opts.self?.() ?? self;
      } catch {
        /* no identity: keep the placeholder */
      }
      ctx.log.warn('authorize: answer refused', { id: conn.id, service: conn.network_service, peer: peer.id, self, reason: why });
      const [closeCtx, done] = ctx.detached(5_000);
      await nextClient(closeCtx)
        .close(closeCtx.with(SERVER_PEER, {}), conn)
        .catch(() => {})
        .finally(done);
      throw new AgentError('PERMISSION_DENIED', `${self} refused the answer of ${peer.id}: ${why}`);
    },
    close: (ctx, conn) => nextClient(ctx).close(ctx, conn),
  };
}
