/**
 * Ctx is the explicit first argument of every chain call: NSM's context.Context in TypeScript.
 * It carries an abort signal (with the deadline), the clock, the logger and typed values.
 * A Ctx is immutable; `with*` methods return a derived Ctx.
 */
import { Clock, realClock } from './clock';
import { Logger, silentLogger } from './log';
import { AgentError } from './errors';

/** A typed key for Ctx values; compare by identity. */
export class Key<T> {
  declare readonly _type: T;
  constructor(readonly name: string) {}
}

interface Node {
  key: Key<unknown>;
  value: unknown;
  parent: Node | undefined;
}

const neverAborted = new AbortController().signal;
const noop = (): void => {};

export class Ctx {
  private constructor(
    readonly signal: AbortSignal,
    /** Absolute deadline (clock milliseconds), if any. */
    readonly deadline: number | undefined,
    readonly clock: Clock,
    readonly log: Logger,
    private readonly values: Node | undefined,
  ) {}

  static background(opts: { clock?: Clock; log?: Logger; signal?: AbortSignal } = {}): Ctx {
    return new Ctx(opts.signal ?? neverAborted, undefined, opts.clock ?? realClock, opts.log ?? silentLogger, undefined);
  }

  get<T>(key: Key<T>): T | undefined {
    for (let n = this.values; n; n = n.parent) if (n.key === key) return n.value as T;
    return undefined;
  }

  with<T>(key: Key<T>, value: T | undefined): Ctx {
    return new Ctx(this.signal, this.deadline, this.clock, this.log, { key: key as Key<unknown>, value, parent: this.values });
  }

  /**
   * A ctx with this one's cancellation, deadline, clock and logger and none of its values: a
   * new call, as a gRPC client's would be (a Request an element makes of its own chain).
   */
  withoutValues(): Ctx {
    return new Ctx(this.signal, this.deadline, this.clock, this.log, undefined);
  }

  withLog(log: Logger): Ctx {
    return new Ctx(this.signal, this.deadline, this.clock, log, this.values);
  }

  /** Milliseconds left before the deadline (Infinity without one). */
  remaining(): number {
    return this.deadline === undefined ? Infinity : Math.max(0, this.deadline - this.clock.now());
  }

  /**
   * A child that is aborted when this one is, or when `ms` have passed. Call the returned
   * cancel function when done, so no timer or listener outlives the work (Go's WithTimeout).
   */
  withTimeout(ms: number): [Ctx, () => void] {
    const deadline = Math.min(this.deadline ?? Infinity, this.clock.now() + ms);
    return this.derive(deadline, this.signal);
  }

  /** A child with this one's values but its own cancellation and deadline; NSM's postpone. */
  detached(ms: number): [Ctx, () => void] {
    return this.derive(this.clock.now() + ms, neverAborted);
  }

  /** A child cancelled by either this ctx or `signal`. */
  withSignal(signal: AbortSignal): [Ctx, () => void] {
    // Nothing aborts this one (a gRPC call's base): `signal` alone is the child's, no controller.
    if (this.signal === neverAborted) return [new Ctx(signal, this.deadline, this.clock, this.log, this.values), noop];
    const ac = new AbortController();
    const onAbort = () => ac.abort(signal.reason ?? this.signal.reason);
    if (signal.aborted || this.signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    if (this.signal !== neverAborted) this.signal.addEventListener('abort', onAbort, { once: true });
    const cancel = () => {
      signal.removeEventListener('abort', onAbort);
      this.signal.removeEventListener('abort', onAbort);
    };
    return [new Ctx(ac.signal, this.deadline, this.clock, this.log, this.values), cancel];
  }

  private derive(deadline: number, parent: AbortSignal): [Ctx, () => void] {
    // Nothing could ever abort it (no deadline, no parent to follow): no AbortController. Heal
    // and the monitors keep one such Ctx per connection (streamCtx), made anew on each refresh.
    if (parent === neverAborted && !Number.isFinite(deadline)) return [new Ctx(neverAborted, undefined, this.clock, this.log, this.values), noop];
    const ac = new AbortController();
    const onParent = () => ac.abort(parent.reason);
    if (parent.aborted) ac.abort(parent.reason);
    else if (parent !== neverAborted) parent.addEventListener('abort', onParent, { once: true });
    const stop = Number.isFinite(deadline)
      ? this.clock.after(deadline - this.clock.now(), () =>
          ac.abort(new AgentError('DEADLINE_EXCEEDED', 'deadline exceeded')),
        )
      : () => {};
    const cancel = () => {
      stop();
      parent.removeEventListener('abort', onParent);
    };
    const d = Number.isFinite(deadline) ? deadline : undefined;
    return [new Ctx(ac.signal, d, this.clock, this.log, this.values), cancel];
  }

  /** Throws the abort reason if this ctx is done. */
  throwIfAborted(): void {
    if (this.signal.aborted) throw AgentError.from(this.signal.reason ?? new AgentError('CANCELLED', 'cancelled'));
  }
}
