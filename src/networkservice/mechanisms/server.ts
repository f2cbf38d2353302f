/**
 * mechanisms server (NSM common/mechanisms): picks the handler for the connection's mechanism.
 *
 * - conn.mechanism set (a refresh): its type's handler, or UNSUPPORTED_MECHANISM
 *   "unsupported mechanism: T".
 * - Otherwise mechanism_preferences are tried in order; for each type with a handler, the
 *   request goes on with conn.mechanism = a copy of that preference. The first that succeeds
 *   wins; if it fails (the handler or anything after it), the next supported preference is
 *   tried, as NSM does. No supported type: UNSUPPORTED_MECHANISM "cannot support any of the
 *   requested mechanisms: [A, B]". One supported preference failed: its error as it is;
 *   several: the last failure's code, with
 *   every failure in the message.
 * - Close goes to the handler of conn.mechanism.type; a connection without a known mechanism
 *   continues down the chain untouched (Close must not fail for what it does not know).
 *
 * Each handler is wrapped in its own chain, so its `nextServer(ctx)` is the element after
 * mechanisms: a handler continues the chain itself, and does its work before or after.
 */
import { chainServer, NetworkServiceServer, nextServer } from '../../core/networkservice';
import { clone } from '../utils';
import { selectMechanism, type MechanismHandlers } from './common';

export { allFailed, typesOf, type MechanismHandlers } from './common';

export function mechanismsServer(handlers: MechanismHandlers<NetworkServiceServer>): NetworkServiceServer {
  const chains = new Map(Object.entries(handlers).map(([type, h]) => [type, chainServer(h)]));

  return {
    request(ctx, req) {
      return selectMechanism(ctx, chains, req, (pref) => ({
        ...req,
        connection: { ...(req.connection ?? {}), mechanism: clone(pref) },
      }));
    },
    async close(ctx, conn) {
      const h = chains.get(conn.mechanism?.type ?? '');
      if (h) return h.close(ctx, conn);
      return nextServer(ctx).close(ctx, conn);
    },
  };
}
