/**
 * Mechanism selection shared by the mechanisms server and client: with conn.mechanism set (a
 * refresh) its type's handler or UNSUPPORTED_MECHANISM; otherwise each preference with a
 * handler in order, first success wins, all failures joined (the last one's code kept).
 */
import type { Connection, Mechanism, NetworkServiceRequest } from '../../api';
import { AgentError } from '../../core/errors';
import type { Ctx } from '../../core/ctx';

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
  for (const pref of req.mechanism_preferences ?? []) {
    const h = chains.get(pref.type ?? '');
    if (!h) continue;
    try {
      return await h.request(ctx, attempt(pref));
    } catch (err) {
      ctx.log.debug('mechanism failed', { type: pref.type, err: AgentError.from(err).message });
      errors.push(err);
    }
  }
  throw allFailed(req.mechanism_preferences, errors);
}
