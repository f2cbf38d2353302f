/**
 * mechanisms client (NSM common/mechanisms client): runs the handler for each mechanism the
 * request offers. With conn.mechanism set (refresh), its type's handler or
 * UNSUPPORTED_MECHANISM. Otherwise each preference with a handler is tried in order (the
 * request is passed as is: client handlers fill in their own preference parameters), first
 * success wins; none supported: UNSUPPORTED_MECHANISM "cannot support any of the requested
 * mechanisms: [..]". Close goes to the handler of conn.mechanism.type, or straight on.
 *
 * Handlers are wrapped in their own chains, so they continue into the element after this one.
 */
import { chainClient, NetworkServiceClient, nextClient } from '../../core/networkservice';
import { selectMechanism, type MechanismHandlers } from './common';

export function mechanismsClient(handlers: MechanismHandlers<NetworkServiceClient>): NetworkServiceClient {
  const chains = new Map(Object.entries(handlers).map(([type, h]) => [type, chainClient(h)]));

  return {
    request(ctx, req) {
      return selectMechanism(ctx, chains, req, () => req);
    },
    async close(ctx, conn) {
      const h = chains.get(conn.mechanism?.type ?? '');
      if (h) return h.close(ctx, conn);
      return nextClient(ctx).close(ctx, conn);
    },
  };
}
