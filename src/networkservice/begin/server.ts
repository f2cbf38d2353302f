/**
 * begin server: one event at a time per Connection.id, in arrival order (a promise queue per
 * id; different ids run in parallel). It remembers the last successful request (with the
 * connection the chain returned) and offers an EventFactory (`eventFactory(ctx)`) so that
 * later elements (timeout, heal) can re-issue Request or Close from the element after begin.
 *
 * - A Request without connection.id fails (INVALID_ARGUMENT).
 * - A successful Request returns state UP.
 * - A Request with state RESELECT_REQUESTED for an established id first closes the old
 *   downstream (next.close with the stored connection), then proceeds.
 * - Close replaces the caller's connection with the stored one and runs with its own deadline
 *   (BeginOptions.closeTimeoutMs), even if the caller's ctx is cancelled. Close of an unknown
 *   id returns without calling next.
 * - If a begin runs earlier in the Ctx (server chain continued by a client chain), this one
 *   only passes through: the chain begins at the outer begin.
 *
 * Placement: right after updatepath (it keys by this hop's id), before every element that
 * keeps state or changes the connection on the way back.
 */
import { NetworkServiceServer, nextServer } from '../../core/networkservice';
import { BeginCore, BeginOptions } from './core';

export function beginServer(opts: BeginOptions = {}): NetworkServiceServer & { readonly size: number } {
  const core = new BeginCore('server', opts);
  return {
    request: (ctx, req) => core.request(ctx, req, nextServer(ctx)),
    close: (ctx, conn) => core.close(ctx, conn, nextServer(ctx)),
    get size() {
      return core.size;
    },
  };
}
