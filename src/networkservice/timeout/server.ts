/**
 * timeout server (NSM common/timeout): closes a connection whose caller stopped refreshing.
 *
 * After each successful Request it arms a timer (ctx.clock) that closes the connection through
 * the begin EventFactory at `previous segment expires − time left before the request's
 * deadline` (no deadline: at expires). Each refresh re-arms it; Close disarms it. A failed
 * refresh leaves the old timer armed. A Request whose previous segment has no `expires` fails
 * with INVALID_ARGUMENT before anything downstream happens. At path.index 0 (a request the
 * agent made itself, no previous hop) the own segment's `expires` is used instead.
 *
 * Placement: after begin and metadata (it uses both), and after updatetoken (which sets the
 * previous segment's expires from the caller's token).
 */
import type { Connection } from '../../api';
import { fromTimestamp } from '../../api/time';
import { Ctx, Key } from '../../core/ctx';
import { AgentError } from '../../core/errors';
import { NetworkServiceServer, nextServer } from '../../core/networkservice';
import { eventFactory } from '../begin';
import { metadata } from '../metadata';
import { currentSegment, indexOf, prevSegment } from '../utils';

/** When the connection must be closed (clock ms), from the caller's segment; undefined if unset. */
function expiresOf(conn: Connection | null | undefined): number | undefined {
  const seg = indexOf(conn) > 0 ? prevSegment(conn) : currentSegment(conn);
  return fromTimestamp(seg?.expires);
}

export function timeoutServer(): NetworkServiceServer {
  // Per instance, so two timeout elements in one chain would not share a timer.
  const TIMER = new Key<() => void>('timeout.timer');

  const disarm = (ctx: Ctx) => metadata(ctx, 'server').take(TIMER)?.();

  return {
    async request(ctx, req) {
      const requested = expiresOf(req.connection);
      if (requested === undefined) {
        const which = indexOf(req.connection) > 0 ? 'the previous path segment' : 'the own path segment';
        throw new AgentError('INVALID_ARGUMENT', `expiration for ${which} cannot be nil`);
      }
      const conn = await nextServer(ctx).request(ctx, req);

      const expires = expiresOf(conn) ?? requested;
      const left = ctx.remaining();
      const delay = expires - ctx.clock.now() - (Number.isFinite(left) ? left : 0);
      const factory = eventFactory(ctx);
      const cancelled = new AbortController();
      const stop = ctx.clock.after(delay, () => {
        ctx.log.info('timeout: connection expired, closing', { id: conn.id });
        void factory.close({ cancel: cancelled.signal }).then((err) => {
          if (err) ctx.log.warn('timeout: close failed', { id: conn.id, err: err.message });
        });
      });
      disarm(ctx);
      metadata(ctx, 'server').set(TIMER, () => {
        stop();
        cancelled.abort();
      });
      return conn;
    },
    async close(ctx, conn) {
      disarm(ctx);
      await nextServer(ctx).close(ctx, conn);
    },
  };
}
