/** Where begin keeps the EventFactory of the connection being processed. */
import { Ctx, Key } from '../../core/ctx';
import { AgentError } from '../../core/errors';

export interface EventOptions {
  /**
   * Request only: Close the current downstream connection first, then Request again without
   * mechanism and network_service_endpoint_name and with state RESELECT_REQUESTED, so the
   * next hops may choose again (heal's reselect).
   */
  reselect?: boolean;
  /** If aborted before the event gets its turn, the event is skipped (resolves undefined). */
  cancel?: AbortSignal;
}

/**
 * Re-issues Request or Close for one connection from the element after begin, with the last
 * successful request, serialised with every other event of the connection (NSM begin.EventFactory).
 * The returned promise never rejects: it resolves to the event's error, or undefined on success
 * or when the event was skipped (connection closed, or `cancel` aborted first). Never await it
 * from inside an event of the same connection: that event holds the queue.
 */
export interface EventFactory {
  request(opts?: EventOptions): Promise<AgentError | undefined>;
  close(opts?: EventOptions): Promise<AgentError | undefined>;
}

/** Which kind of begin made the factory: a server begin or a client begin. */
export type Side = 'server' | 'client';

const KEY = new Key<{ factory: EventFactory; side: Side }>('begin.eventFactory');

/** Puts f in ctx (or removes the factory, with undefined). */
export function withEventFactory(ctx: Ctx, f: EventFactory | undefined, side: Side = 'server'): Ctx {
  return ctx.with(KEY, f ? { factory: f, side } : undefined);
}

/** The EventFactory of the current connection, if the chain has begin before the caller. */
export function eventFactoryOf(ctx: Ctx): EventFactory | undefined {
  return ctx.get(KEY)?.factory;
}

/** The side of the begin that put the factory in ctx, if any. */
export function eventFactorySide(ctx: Ctx): Side | undefined {
  return ctx.get(KEY)?.side;
}

/** The EventFactory of the current connection; throws if there is no begin before the caller. */
export function eventFactory(ctx: Ctx): EventFactory {
  const f = ctx.get(KEY)?.factory;
  if (!f) throw new AgentError('INTERNAL', 'no event factory in context: add begin to the chain before this element');
  return f;
}
