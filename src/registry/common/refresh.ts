/**
 * refresh (NSE registry client, as upstream NSM sdk registry/common/refresh): keeps an NSE
 * registered.
 *
 * - After each successful Register it re-registers at 2/3 of the time left until the returned
 *   expiration_time (about every 40 s with the 1-minute default). No expiration_time, no
 *   refresh. A failed re-register is retried until it works or the entry is stopped, with an
 *   exponential back-off: `retryInterval` (200 ms) doubling up to `maxRetryInterval` (1 s),
 *   each wait jittered by ±20 %; each try has its own `tryTimeout` (15 s). The cap is short
 *   because a registry that restarted must have the endpoint back within about a second of
 *   serving again; the log, not the retry rate, is what an outage must not flood.
 * - A run of failures is logged once at warn when it starts, then at most every
 *   `failureLogInterval` (1 min) with the count so far, and its end at info ("registry
 *   reachable again after N failures"), so a registry outage costs a few lines, not a flood.
 * - What is re-sent is the last response with the caller's name and expiration_time cleared
 *   (upstream begin's mergeNSE), so initial_registration_time survives and the registry
 *   chooses a fresh expiry.
 * - heal (optional): after Register it watches Find{name, watch=true} on its own name. When
 *   that stream ends or fails (registry restart) it re-registers at once (after
 *   `retryInterval` if the stream had lived less than that), then watches again; when a
 *   deleted=true for itself arrives while registered, it re-registers too.
 * - Re-registrations go through the elements after this one, with the values of the original
 *   Register's ctx (e.g. REGISTRY_PATH), and are serialised per name with Unregister.
 * - Stopped by Unregister of that name (which waits for an in-flight re-register to settle
 *   before unregistering) and, for every name, by aborting `signal` (the client's lifetime;
 *   nothing is unregistered then). The ctx of the Register call does not bound the refresh.
 */
import type { NetworkServiceEndpoint } from '../../api';
import { fromTimestamp } from '../../api/time';
import { Ctx } from '../../core/ctx';
import { NseRegistry, nextNseRegistry } from '../../core/registry';
import { Clock } from '../../core/clock';
import { clone } from '../../api/clone';

export interface RefreshOptions {
  /** The client's lifetime: aborting it stops every refresh and heal. */
  signal?: AbortSignal;
  /** Watch the own entry and re-register when the watch breaks or reports it deleted (all names, or those it is true for). */
  heal?: boolean | ((name: string) => boolean);
  /** Milliseconds before the first retry of a failed re-register; doubles per failure. Default 200. */
  retryInterval?: number;
  /** The longest wait between retries, in milliseconds; default 1 s. */
  maxRetryInterval?: number;
  /** Milliseconds between warnings that a run of failures goes on; default 1 min. */
  failureLogInterval?: number;
  /** A number in [0, 1) for the jitter; default Math.random (tests pass a constant). */
  random?: () => number;
  /** Milliseconds one re-register attempt may take; default 15 s. */
  tryTimeout?: number;
  /**
   * Run before a re-register that heal asked for (not before a plain refresh): the registry
   * may have lost more than this entry (a memory registry that restarted), e.g. the network
   * services the endpoint serves. A failure fails the attempt, which is retried.
   */
  beforeHeal?: (ctx: Ctx, nse: NetworkServiceEndpoint) => Promise<void>;
}

interface Entry {
  readonly name: string;
  readonly ac: AbortController;
  /** The original Register's ctx values, without its signal or deadline. */
  readonly base: Ctx;
  readonly releaseBase: () => void;
  /** The elements after this one, as seen by the original Register. */
  readonly next: NseRegistry;
  registration: NetworkServiceEndpoint;
  stopTimer: () => void;
  /** A re-register is queued or running. */
  pending: boolean;
  watching: boolean;
  busy: Promise<void>;
}

export function refreshNseClient(opts: RefreshOptions = {}): NseRegistry {
  const retryInterval = opts.retryInterval ?? 200;
  const maxRetryInterval = Math.max(retryInterval, opts.maxRetryInterval ?? 1_000);
  const failureLogInterval = opts.failureLogInterval ?? 60_000;
  const random = opts.random ?? Math.random;
  /** The wait after the n-th failure in a row (n >= 1). */
  const backoff = (n: number) => {
    const base = Math.min(maxRetryInterval, retryInterval * 2 ** Math.min(n - 1, 30));
    return Math.round(base * (0.8 + 0.4 * random()));
  };
  const tryTimeout = opts.tryTimeout ?? 15_000;
  const heals = (name: string) => (typeof opts.heal === 'function' ? opts.heal(name) : !!opts.heal);
  const entries = new Map<string, Entry>();

  const stop = (e: Entry) => {
    e.ac.abort();
    e.stopTimer();
    e.releaseBase();
  };
  opts.signal?.addEventListener('abort', () => {
    for (const e of entries.values()) stop(e);
    entries.clear();
  });

  const schedule = (e: Entry, resp: NetworkServiceEndpoint) => {
    e.stopTimer();
    const exp = fromTimestamp(resp.expiration_time);
    if (exp === undefined || e.ac.signal.aborted) return;
    const clock = e.base.clock;
    e.stopTimer = clock.after(Math.max(0, (2 * (exp - clock.now())) / 3), () => reRegister(e, 'refresh'));
  };

  const reRegister = (e: Entry, why: string) => {
    if (e.pending || e.ac.signal.aborted) return;
    e.pending = true;
    e.stopTimer();
    e.busy = e.busy.then(() => attempt(e, why)).finally(() => (e.pending = false));
  };

  const attempt = async (e: Entry, why: string) => {
    let failures = 0;
    let lastWarnAt = 0;
    while (!e.ac.signal.aborted) {
      const [withStop, releaseStop] = e.base.withSignal(e.ac.signal);
      const [ctx, releaseTimeout] = withStop.withTimeout(tryTimeout);
      try {
        if (why !== 'refresh' && opts.beforeHeal) await opts.beforeHeal(ctx, clone(e.registration));
        const resp = await e.next.register(ctx, clone(e.registration));
        e.registration = forRefresh(e.name, resp);
        schedule(e, resp);
        if (heals(e.name) && !e.watching) watch(e);
        if (failures > 0) e.base.log.info(`registry reachable again after ${failures} failures`, { nse: e.name, why, failures });
        else e.base.log.debug('re-registered', { nse: e.name, why });
        return;
      } catch (err) {
        if (e.ac.signal.aborted) return;
        failures++;
        const now = e.base.clock.now();
        if (failures === 1) {
          lastWarnAt = now;
          e.base.log.warn('re-register failed; retrying with back-off', { nse: e.name, why, err });
        } else if (now - lastWarnAt >= failureLogInterval) {
          lastWarnAt = now;
          e.base.log.warn('re-register still failing; retrying with back-off', { nse: e.name, why, failures, err });
        }
      } finally {
        releaseTimeout();
        releaseStop();
      }
      await sleep(e.base.clock, backoff(failures), e.ac.signal);
    }
  };

  const watch = (e: Entry) => {
    e.watching = true;
    const clock = e.base.clock;
    const openedAt = clock.now();
    const [ctx, release] = e.base.withSignal(e.ac.signal);
    const run = async () => {
      try {
        for await (const r of e.next.find(ctx, { network_service_endpoint: { name: e.name }, watch: true })) {
          if (r.deleted && r.network_service_endpoint?.name === e.name) reRegister(e, 'deleted by the registry');
        }
      } catch (err) {
        if (!e.ac.signal.aborted) e.base.log.info('registry watch broke', { nse: e.name, err });
      } finally {
        release();
        e.watching = false;
      }
      if (e.ac.signal.aborted) return;
      if (clock.now() - openedAt < retryInterval) await sleep(clock, retryInterval, e.ac.signal);
      reRegister(e, 'registry watch lost');
    };
    void run();
  };

  return {
    async register(ctx, nse) {
      const next = nextNseRegistry(ctx);
      const resp = await next.register(ctx, nse);
      const name = resp.name || nse.name || '';
      if (!name || opts.signal?.aborted) return resp;
      const old = entries.get(name);
      if (old) stop(old);
      const [base, releaseBase] = ctx.detached(Infinity);
      const e: Entry = {
        name,
        ac: new AbortController(),
        base,
        releaseBase,
        next,
        registration: forRefresh(name, resp),
        stopTimer: () => {},
        pending: false,
        watching: false,
        busy: Promise.resolve(),
      };
      entries.set(name, e);
      schedule(e, resp);
      if (heals(name)) watch(e);
      return resp;
    },
    find: (ctx, query) => nextNseRegistry(ctx).find(ctx, query),
    async unregister(ctx, nse) {
      const e = entries.get(nse.name ?? '');
      if (e) {
        entries.delete(e.name);
        stop(e);
        await e.busy;
      }
      await nextNseRegistry(ctx).unregister(ctx, nse);
    },
  };
}

/** What a refresh sends: the last answer, under our name, without its expiry. */
function forRefresh(name: string, resp: NetworkServiceEndpoint): NetworkServiceEndpoint {
  return { ...clone(resp), name, expiration_time: null };
}

function sleep(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      cancel();
      signal.removeEventListener('abort', done);
      resolve();
    };
    const cancel = clock.after(ms, done);
    signal.addEventListener('abort', done, { once: true });
  });
}
