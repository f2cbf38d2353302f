/**
 * refresh client (NSM common/refresh): re-Requests a connection before any of its path
 * segments expires, so the hops' timeout elements do not close it.
 *
 * After each successful Request: T = earliest `expires` over all path segments, from now.
 * The re-Request (through the begin EventFactory) is scheduled after T × scale, with
 * scale = 1/3 for a path of at most one segment, else 0.2 + 0.2 × index / len (0.2..0.4 of T:
 * outer hops refresh a little earlier than inner ones). An expired, missing or zero expiry
 * means "now". A failed refresh is retried every 200 ms until one succeeds (which re-arms the
 * schedule through this element) or the connection is closed. Close cancels everything.
 *
 * Placement: after begin and metadata in a client chain.
 */
import type { Connection } from '../../api';
import { fromTimestamp } from '../../api/time';
import { Ctx, Key } from '../../core/ctx';
import { NetworkServiceClient, nextClient } from '../../core/networkservice';
import { eventFactory } from '../begin';
import { hasMetadata, metadata } from '../metadata';
import { indexOf, segmentsOf } from '../utils';

export const REFRESH_RETRY_MS = 200;

// The reason a superseded refresh is cancelled with. abort() without one makes a DOMException,
// stack trace included, for every refresh (a fifth of a millisecond each with 1,000 held).
const SUPERSEDED = Object.freeze(new Error('superseded by a later request or close'));

/** Milliseconds until the refresh of conn should run. */
export function refreshAfter(conn: Connection, now: number): number {
  const segments = segmentsOf(conn);
  if (segments.length === 0) return 0;
  let min = Infinity;
  for (const seg of segments) {
    const exp = fromTimestamp(seg.expires);
    const left = exp === undefined ? 0 : exp - now;
    if (left < min) min = left;
  }
  if (!(min > 0)) return 0;
  const scale = segments.length > 1 ? 0.2 + (0.2 * indexOf(conn)) / segments.length : 1 / 3;
  return Math.floor(min * scale);
}

export function refreshClient(): NetworkServiceClient {
  const CANCEL = new Key<() => void>('refresh.cancel');
  const cancelOld = (ctx: Ctx) => (hasMetadata(ctx) ? metadata(ctx, 'client').take(CANCEL)?.() : undefined);

  return {
    async request(ctx, req) {
      // Both throw if the chain lacks begin or metadata: check before anything is set up.
      const factory = eventFactory(ctx);
      const md = metadata(ctx, 'client');
      const conn = await nextClient(ctx).request(ctx, req);

      // The timer keeps only what it uses (not the connection or the Ctx: one per held connection).
      const { clock, log } = ctx;
      const id = conn.id;
      const cancelled = new AbortController();
      let stop = () => {};
      const fire = () => {
        void factory.request({ cancel: cancelled.signal }).then((err) => {
          if (!err || cancelled.signal.aborted) return;
          log.warn('refresh failed, retrying', { id, err: err.message });
          stop = clock.after(REFRESH_RETRY_MS, fire);
        });
      };
      stop = clock.after(refreshAfter(conn, clock.now()), fire);

      md.take(CANCEL)?.();
      md.set(CANCEL, () => {
        cancelled.abort(SUPERSEDED);
        stop();
      });
      return conn;
    },
    async close(ctx, conn) {
      cancelOld(ctx);
      await nextClient(ctx).close(ctx, conn);
    },
  };
}
