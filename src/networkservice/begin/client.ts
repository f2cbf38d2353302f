/**
 * begin client: the client twin of the begin server (see server.ts), with two differences:
 * - a re-Request is merged with what the chain holds (merge.ts): the caller's changes to the
 *   endpoint name and connection context win, the rest comes from the current connection;
 * - the state of the returned connection is left as the next hop sent it.
 * Factory Requests (refresh, heal) reuse the stored request; with `reselect` they close first
 * and ask again without mechanism and endpoint name, state RESELECT_REQUESTED.
 *
 * Placement: right after updatepath in a client chain.
 */
import { NetworkServiceClient, nextClient } from '../../core/networkservice';
import { BeginCore, BeginOptions } from './core';

export function beginClient(opts: BeginOptions = {}): NetworkServiceClient & { readonly size: number } {
  const core = new BeginCore('client', opts);
  return {
    request: (ctx, req) => core.request(ctx, req, nextClient(ctx)),
    close: (ctx, conn) => core.close(ctx, conn, nextClient(ctx)),
    get size() {
      return core.size;
    },
  };
}
