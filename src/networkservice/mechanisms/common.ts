/**
 * Mechanism selection shared by the mechanisms server and client: with conn.mechanism set (a
 * refresh) its type's handler or UNSUPPORTED_MECHANISM; otherwise each preference with a
 * handler in order, first success wins. When the one supported preference failed, its error is
 * passed on as it is (code, message and component: whatever failed after mechanism selection
 * is not a mechanism problem); when several failed, the last one's code and component are
 * kept and each failure is listed, the last first, by its mechanism type.
 */
import type { Connection, Mechanism, NetworkServiceRequest } from '../../api';
import { AgentError } from '../../core/errors';
import type { Ctx } from '../../core/ctx';

export type MechanismHandlers<E> = Readonly<Record<string, E>>;

export function typesOf(prefs: Mechanism[] | undefined): string {
  return `[${(prefs ?? []).map((m) => m.type ?? '').join(', ')}]`;
}

export function allFailed(prefs: Mechanism[] | undefined, errors: unknown[], tried: string[] = []): AgentError {
  if (errors.length === 0) return new AgentError('UNSUPPORTED_MECHANISM', `cannot support any of the requested mechanisms: ${typesOf(prefs)}`);
  const wrapped = errors.map((e) => AgentError.from(e));
  const last = wrapped[wrapped.length - 1]!;
  if (wrapped.length === 1) return last;
  const parts = wrapped.map((e, i) => (tried[i] ? `${tried[i]}: ${e.message}` : e.message)).reverse();
  return new AgentError(last.code, parts.join('; '), { cause: last, component: last.component });
}

/** Runs the request through the selected handler; `attempt` shapes the request per preference. */
export async function selectMechanism<H extends { request(ctx: Ctx, req: NetworkServiceRequest): Promise<Connection> }>(
  ctx: Ctx,
  chains: Map<string, H>,
  req: NetworkServiceRequest,
  attempt: (pref: Mechanism) => NetworkServiceRequest,
): Promise<Connection> {
  const current = req.connection?.mechanism;
  if (current?.type) {
    const h = chains.get(current.type);
    if (!h) throw new AgentError('UNSUPPORTED_MECHANISM', `unsupported mechanism: ${current.type}`);
    return h.request(ctx, req);
  }
  const errors: unknown[] = [];
  const tried: string[] = [];
  for (const pref of req.mechanism_preferences ?? []) {
    const h = chains.get(pref.type ?? '');
    if (!h) continue;
    try {
      return await h.request(ctx, attempt(pref));
    } catch (err) {
      ctx.log.debug('mechanism failed', { type: pref.type, err: AgentError.from(err).message });
      errors.push(err);
      tried.push(pref.type ?? '');
    }
  }
  throw allFailed(req.mechanism_preferences, errors, tried);
}
