/**
 * mechanisms server (NSM common/mechanisms): picks the handler for the connection's mechanism.
 *
 * - conn.mechanism set (a refresh): its type's handler, or UNSUPPORTED_MECHANISM
 *   "unsupported mechanism: T".
 * - Otherwise mechanism_preferences are tried in order; for each type with a handler, the
 *   request goes on with conn.mechanism = a copy of that preference. The first that succeeds
 *   wins; if it fails (the handler or anything after it), the next supported preference is
 *   tried, as NSM does. No supported type: UNSUPPORTED_MECHANISM "cannot support any of the
 *   requested mechanisms: [A, B]". All supported ones failed: the last failure's code, with
 *   every failure in the message.
 * - Close goes to the handler of conn.mechanism.type; a connection without a known mechanism
 *   continues down the chain untouched (Close must not fail for what it does not know).
 *
 * Each handler is wrapped in its own chain, so its `nextServer(ctx)` is the element after
 * mechanisms: a handler continues the chain itself, and does its work before or after.
 */
import type { Mechanism, NetworkServiceRequest } from '../../api';
import { AgentError } from '../../core/errors';
import { chainServer, NetworkServiceServer, nextServer } from '../../core/networkservice';
import { clone } from '../utils';

export type MechanismHandlers<E> = Readonly<Record<string, E>>;

export function typesOf(prefs: Mechanism[] | undefined): string {
  return `[${(prefs ?? []).map((m) => m.type ?? '').join(', ')}]`;
}

export function allFailed(prefs: Mechanism[] | undefined, errors: unknown[]): AgentError {
  const base = `cannot support any of the requested mechanisms: ${typesOf(prefs)}`;
  if (errors.length === 0) return new AgentError('UNSUPPORTED_MECHANISM', base);
  const wrapped = errors.map((e) => AgentError.from(e));
  const last = wrapped[wrapped.length - 1]!;
  return new AgentError(last.code, `${base}: ${wrapped.map((e) => e.message).join('; ')}`, { cause: last });
}

export function mechanismsServer(handlers: MechanismHandlers<NetworkServiceServer>): NetworkServiceServer {
  const chains = new Map(Object.entries(handlers).map(([type, h]) => [type, chainServer(h)]));

  return {
    async request(ctx, req) {
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
        const attempt: NetworkServiceRequest = { ...req, connection: { ...(req.connection ?? {}), mechanism: clone(pref) } };
        try {
          return await h.request(ctx, attempt);
        } catch (err) {
          ctx.log.debug('mechanism failed', { type: pref.type, err: AgentError.from(err).message });
          errors.push(err);
        }
      }
      throw allFailed(req.mechanism_preferences, errors);
    },
    async close(ctx, conn) {
      const h = chains.get(conn.mechanism?.type ?? '');
      if (h) return h.close(ctx, conn);
      return nextServer(ctx).close(ctx, conn);
    },
  };
}
