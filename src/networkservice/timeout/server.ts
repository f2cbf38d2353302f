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
import { hasMetadata, metadata } from '../metadata';
import { currentSegment, indexOf, prevSegment } from '../utils';

// The reason a superseded timer's close is cancelled with (abort() without one makes a
// DOMException, stack trace included, on every refresh).
const SUPERSEDED = Object.freeze(new Error('superseded by a later request or close'));

/** When the connection must be closed (clock ms), from the caller's segment; undefined if unset. */
function expiresOf(conn: Connection | null | undefined): number | undefined {
  const seg = indexOf(conn) > 0 ? prevSegment(conn) : currentSegment(conn);
  return fromTimestamp(seg?.expires);
}

export function timeoutServer(): NetworkServiceServer {
  // Per instance, so two timeout elements in one chain would not share a timer.
  const TIMER = new Key<() => void>('timeout.timer');

  // Close must not fail on a chain without metadata: there is then simply no timer.
  const disarm = (ctx: Ctx) => (hasMetadata(ctx) ? metadata(ctx, 'server').take(TIMER)?.() : undefined);

  return {
    async request(ctx, req) {
      const requested = expiresOf(req.connection);
      if (requested === undefined) {
        const which = indexOf(req.connection) > 0 ? 'the previous path segment' : 'the own path segment';
        throw new AgentError('INVALID_ARGUMENT', `expiration for ${which} cannot be nil`);
      }
      // Both throw if the chain lacks begin or metadata: check before anything is set up.
      const factory = eventFactory(ctx);
      const md = metadata(ctx, 'server');
      const conn = await nextServer(ctx).request(ctx, req);

      const expires = expiresOf(conn) ?? requested;
      // NSM closes ahead of expiry by the request's remaining time, so that the Close still
      // carries valid tokens. That advance is capped at a third of the lifetime left: with a
      // request deadline longer than the token lifetime (15 s calls, 3 s tokens) NSM would
      // close every connection at once.
      const lifetime = expires - ctx.clock.now();
      const left = ctx.remaining();
      const advance = Math.min(Number.isFinite(left) ? left : 0, Math.max(0, lifetime) / 3);
      const delay = lifetime - advance;
      const cancelled = new AbortController();
      // The timer keeps only what it uses (not the connection or the Ctx: one per connection).
      const { log } = ctx;
      const id = conn.id;
      const stop = ctx.clock.after(delay, () => {
        log.info('timeout: connection expired, closing', { id });
        void factory.close({ cancel: cancelled.signal }).then((err) => {
          if (err) log.warn('timeout: close failed', { id, err: err.message });
        });
      });
      md.take(TIMER)?.();
      md.set(TIMER, () => {
        stop();
        cancelled.abort(SUPERSEDED);
      });
      return conn;
    },
    async close(ctx, conn) {
      disarm(ctx);
      await nextServer(ctx).close(ctx, conn);
    },
  };
}
