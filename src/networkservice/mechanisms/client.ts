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
import type { NetworkServiceRequest } from '../../api';
import { AgentError } from '../../core/errors';
import { chainClient, NetworkServiceClient, nextClient } from '../../core/networkservice';
import { allFailed, MechanismHandlers } from './server';

export function mechanismsClient(handlers: MechanismHandlers<NetworkServiceClient>): NetworkServiceClient {
  const chains = new Map(Object.entries(handlers).map(([type, h]) => [type, chainClient(h)]));

  return {
    async request(ctx, req: NetworkServiceRequest) {
      const current = req.connection?.mechanism;
      if (current?.type) {
        const h = chains.get(current.type);
        if (!h) throw new AgentError('UNSUPPORTED_MECHANISM', `unsupported mechanism: ${current.type}`);
        return h.request(ctx, req);
      }
      const errors: unknown[] = [];
      for (const pref of req.mechanism_preferences ?? []) {
        const h = chains.get(pref.type ?? '');
        if (!h) continue;
        try {
          return await h.request(ctx, req);
        } catch (err) {
          errors.push(err);
        }
      }
      throw allFailed(req.mechanism_preferences, errors);
    },
    async close(ctx, conn) {
      const h = chains.get(conn.mechanism?.type ?? '');
      if (h) return h.close(ctx, conn);
      return nextClient(ctx).close(ctx, conn);
    },
  };
}
