/**
 * Whether the remote registry answers, as the agent's own calls to it (registrations, their
 * refreshes, finds and watches) find it; no probe of its own. A call that cannot reach the
 * registry fails with UNAVAILABLE naming the registry at its URL, so that the error a client
 * sees blames the registry, not the agent that relayed it.
 */
import type { Clock } from '../core/clock';
import { AgentError, COMPONENT } from '../core/errors';
import type { NsRegistry, NseRegistry } from '../core/registry';
import type { Ctx } from '../core/ctx';

export interface RegistryHealthView {
  url: string;
  /** 'reachable', 'unreachable', or 'unknown' before the first call settled. */
  state: 'reachable' | 'unreachable' | 'unknown';
  /** When the state last changed (ms since the epoch); 0 while unknown. */
  since: number;
  /** The last failure's message while unreachable. */
  error: string;
}

export class RegistryHealth {
  private state: RegistryHealthView['state'] = 'unknown';
  private since = 0;
  private error = '';
  /** Calls that could not reach the registry, since the start. */
  failures = 0;

  constructor(
    readonly url: string,
    private readonly clock: Clock,
  ) {}

  reachable(): void {
    if (this.state !== 'reachable') {
      this.state = 'reachable';
      this.since = this.clock.now();
    }
    this.error = '';
  }

  /** Records a failed call; returns the error to throw (naming the registry when unreachable). */
  failed(ctx: Ctx, err: unknown): unknown {
    if (ctx.signal.aborted) return err;
    const e = AgentError.from(err);
    // A call that timed out says nothing either way (a slow answer, or no route at all).
    if (e.code === 'DEADLINE_EXCEEDED' || e.code === 'CANCELLED') return err;
    if (e.code !== 'UNAVAILABLE') {
      // The registry answered (with an error of its own): it is reachable.
      this.reachable();
      return AgentError.at(e, COMPONENT.registry(this.url));
    }
    this.failures++;
    if (this.state !== 'unreachable') {
      this.state = 'unreachable';
      this.since = this.clock.now();
    }
    if (e.message.startsWith('cannot reach the registry')) return e;
    this.error = e.message;
    return new AgentError('UNAVAILABLE', `cannot reach the registry at ${this.url}: ${e.message}`, { cause: err, component: COMPONENT.registry(this.url) });
  }

  view(): RegistryHealthView {
    return { url: this.url, state: this.state, since: this.since, error: this.error };
  }
}

type Registry<T, Q, R> = {
  register(ctx: Ctx, x: T): Promise<T>;
  find(ctx: Ctx, q: Q): AsyncIterable<R>;
  unregister(ctx: Ctx, x: T): Promise<void>;
};

/** The registry `inner`, its calls' outcomes recorded in `health`. */
export function healthWatched<T extends NsRegistry | NseRegistry>(inner: T, health: RegistryHealth): T {
  const r = inner as unknown as Registry<unknown, unknown, unknown>;
  const watched: Registry<unknown, unknown, unknown> = {
    async register(ctx, x) {
      try {
        const res = await r.register(ctx, x);
        health.reachable();
        return res;
      } catch (err) {
        throw health.failed(ctx, err);
      }
    },
    async *find(ctx, q) {
      try {
        let first = true;
        for await (const item of r.find(ctx, q)) {
          if (first) health.reachable();
          first = false;
          yield item;
        }
        if (first) health.reachable();
      } catch (err) {
        throw health.failed(ctx, err);
      }
    },
    async unregister(ctx, x) {
      try {
        await r.unregister(ctx, x);
        health.reachable();
      } catch (err) {
        throw health.failed(ctx, err);
      }
    },
  };
  return watched as unknown as T;
}
