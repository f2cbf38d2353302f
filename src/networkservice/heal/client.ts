/**
 * heal client (NSM sdk common/heal + upstreamrefresh): watches each connection on the
 * next hop's MonitorConnections stream and, optionally, with a data-plane liveness check, and
 * re-Requests it through the begin EventFactory when it breaks.
 *
 * After each successful Request a stream is opened (unless one is open for the connection)
 * with selector `path_segments: [{id, name}]` of the own segment; events are filtered to this
 * connection (see monitor/downstream.ts, watchConnection; DELETE counts as DOWN).
 *
 * Heal triggers: (a) the stream breaks with a code other than CANCELLED; (b) an event with
 * state DOWN; (c) the liveness check fails (run every livenessIntervalMs while the connection
 * is established and not being healed, one check at a time).
 * A heal closes the stream and stops the checks, then:
 * - the data plane still answers (liveness passes): re-Request without reselect, repairing the
 *   path in place;
 * - it is dead, or there is no liveness check: re-Request with reselect (begin closes the
 *   downstream and asks again without mechanism and endpoint, state RESELECT_REQUESTED).
 * A failed attempt is retried after a back-off (100 ms doubling to 1 s by default); before a
 * retry without reselect the data plane is checked again. Once a reselect was needed, every
 * later attempt of that heal reselects. The heal ends with the first successful Request of the
 * connection made while it runs (the heal's own or any other), which reopens the stream and
 * restarts the checks. A Request already on its way when the heal started (a refresh) does not
 * end it: it was made for the connection as it was, and a heal that must reselect would be
 * over with the data plane still dead.
 * An event with state REFRESH_REQUESTED re-Requests at once (NSM upstreamrefresh).
 *
 * Close stops the stream, the checks, the retries and queued heal events. The per-connection
 * state lives here, keyed by the connection id, not in the connection metadata: a reselect
 * closes the downstream (dropping the metadata) in the middle of a heal that has to go on.
 * A Close that begin does not pass on (the connection was closed while a reselect had not
 * succeeded yet, begin state 'down') is noticed at the next retry: the heal's event is skipped
 * and the heal stops without a Request.
 *
 * Placement: after begin, metadata and refresh in a client chain; elements between begin and
 * heal must not fail a Request after heal saw it succeed.
 */
import type { Connection, ConnectionEvent, MonitorScopeSelector } from '../../api';
import type { Clock } from '../../core/clock';
import type { Ctx } from '../../core/ctx';
import type { AgentError } from '../../core/errors';
import type { Logger } from '../../core/log';
import { NetworkServiceClient, nextClient } from '../../core/networkservice';
import { eventFactory, type EventFactory } from '../begin';
import { streamCtx, watchConnection, type ConnectionWatch } from '../monitor';

export const DEFAULT_LIVENESS_INTERVAL_MS = 200;
export const DEFAULT_RETRY_INITIAL_MS = 100;
export const DEFAULT_RETRY_MAX_MS = 1_000;

export interface HealOptions {
  /**
   * Opens the next hop's MonitorConnections stream (same connection as the Requests go over).
   * The Ctx has the values of the connection's latest successful Request, not its cancellation.
   * Returns a function that ends it. onError: the stream broke (never called after the
   * returned function was called).
   */
  monitor(
    ctx: Ctx,
    selector: MonitorScopeSelector,
    onEvent: (e: ConnectionEvent) => void,
    onError: (err: AgentError) => void,
  ): () => void;
  /**
   * Data-plane liveness check (true = alive); absent = no data-plane check (every heal
   * reselects, as NSM). A rejection counts as dead. It should bound its own duration.
   */
  liveness?: (conn: Connection) => Promise<boolean>;
  /**
   * Default 200 (NSM sdk). A function is asked before each periodic check: a host holding many
   * connections can space its checks out to keep their total cost bounded.
   */
  livenessIntervalMs?: number | (() => number);
  /** Back-off of heal re-requests: default 100 ms doubling to 1000 ms. */
  retry?: { initialMs?: number; maxMs?: number };
  /**
   * Told about each heal of a connection (by its own id): when it starts, after each failed
   * attempt and when it recovers; `undefined` once the connection is closed. For status.
   */
  onHeal?: (id: string, heal: HealReport | undefined) => void;
  /** Told when a heal starts and when it recovers the connection (metrics). */
  observe?: HealObserver;
}

/** What a heal did so far, as onHeal reports it. */
export interface HealReport {
  trigger: HealTrigger;
  /** The trigger's detail (the stream's error), if any. */
  detail?: string;
  /** When it started, ms since the epoch (the chain's clock). */
  started: number;
  /** Requests sent so far. */
  attempts: number;
  /** A reselect was needed (the data plane was dead, or there is no liveness check). */
  reselected: boolean;
  /** When the connection was back; undefined while the heal runs. */
  recovered?: number;
}

export interface HealObserver {
  started(trigger: HealTrigger): void;
  recovered(trigger: HealTrigger, reselected: boolean, tookMs: number): void;
}

export type HealTrigger = 'monitor stream broke' | 'connection down' | 'data plane check failed';

export interface HealClient extends NetworkServiceClient {
  /** A heal of this connection (own id) is running. */
  healing(id: string): boolean;
  /** Connections watched; for tests and diagnostics. */
  readonly size: number;
}

interface Heal {
  trigger: HealTrigger;
  detail: string | undefined;
  started: number;
  attempts: number;
  /** Sticky: once a reselect was needed, every later attempt reselects. */
  reselect: boolean;
  backoff: number;
  /** A factory Request of this heal is queued or running. */
  inFlight: boolean;
  /** Skips this heal's queued events once it is over. */
  readonly over: AbortController;
  stopTimer: (() => void) | undefined;
}

interface Settings {
  monitor: HealOptions['monitor'];
  onHeal: HealOptions['onHeal'];
  liveness: HealOptions['liveness'];
  intervalMs: () => number;
  initialMs: number;
  maxMs: number;
  observe: HealObserver | undefined;
}

/** One connection's watch, checks and heal. */
class Healer {
  factory!: EventFactory;
  conn!: Connection;
  log!: Logger;
  clock!: Clock;
  private valuesCtx!: Ctx;
  private watch: ConnectionWatch | undefined;
  heal: Heal | undefined;
  private closed = false;
  /** Bumped when a heal starts or ends: check results from another epoch are ignored. */
  private epoch = 0;
  private stopCheckTimer: (() => void) | undefined;
  private checking: Promise<boolean> | undefined;

  constructor(
    readonly id: string,
    private readonly s: Settings,
    private readonly gone: (h: Healer) => void,
  ) {}

  /**
   * A Request of the connection succeeded at heal's position. `healAtStart`: the heal that was
   * running when that Request reached heal; only a Request made while the heal runs ends it.
   */
  succeeded(ctx: Ctx, factory: EventFactory, conn: Connection, healAtStart: Heal | undefined): void {
    this.factory = factory;
    this.conn = conn;
    this.log = ctx.log;
    this.clock = ctx.clock;
    this.valuesCtx = streamCtx(ctx);
    if (this.heal && this.heal === healAtStart) this.recovered();
    this.ensureWatch();
    this.scheduleCheck();
  }

  /** Close: nothing may keep running. */
  stop(): void {
    if (this.closed) return;
    this.closed = true;
    this.endHeal();
    this.unwatch();
    this.stopChecks();
    this.gone(this);
    this.s.onHeal?.(this.id, undefined);
  }

  private report(h: Heal, recovered?: number): void {
    this.s.onHeal?.(this.id, {
      trigger: h.trigger,
      ...(h.detail ? { detail: h.detail } : {}),
      started: h.started,
      attempts: h.attempts,
      reselected: h.reselect,
      ...(recovered !== undefined ? { recovered } : {}),
    });
  }

  /** The Close that a reselect of this heal sends down (not a Close of the connection). */
  closingForReselect(): boolean {
    return this.heal?.inFlight === true && this.heal.reselect;
  }

  unwatch(): void {
    this.watch?.stop();
    this.watch = undefined;
  }

  private ensureWatch(): void {
    if (this.closed || (this.watch && !this.watch.ended)) return;
    const ctx = this.valuesCtx;
    try {
      this.watch = watchConnection((sel, onEvent, onError) => this.s.monitor(ctx, sel, onEvent, onError), this.conn, {
        state: (state) => {
          if (state === 'DOWN') this.trigger('connection down');
          else if (state === 'REFRESH_REQUESTED') this.refreshNow();
        },
        broken: (err) => this.trigger('monitor stream broke', err.message),
      });
    } catch (err) {
      // No stream until the next successful Request (healing now would only loop).
      this.watch = undefined;
      this.log.warn('heal: cannot open the monitor stream', { id: this.id, err: err instanceof Error ? err.message : String(err) });
      return;
    }
    // A heal started (or a Close came) from a callback while the stream was being opened.
    if (this.heal || this.closed) this.unwatch();
  }

  private refreshNow(): void {
    if (this.closed || this.heal) return;
    this.log.debug('heal: refresh requested by the next hop', { id: this.id });
    void this.factory.request().then((err) => {
      if (err && !this.closed) this.log.warn('heal: requested refresh failed', { id: this.id, err: err.message });
    });
  }

  // --- liveness checks ---

  private stopChecks(): void {
    this.stopCheckTimer?.();
    this.stopCheckTimer = undefined;
  }

  private scheduleCheck(): void {
    if (!this.s.liveness || this.closed || this.heal || this.stopCheckTimer) return;
    this.stopCheckTimer = this.clock.after(this.s.intervalMs(), () => {
      this.stopCheckTimer = undefined;
      this.periodicCheck();
    });
  }

  private periodicCheck(): void {
    if (this.closed || this.heal) return;
    const epoch = this.epoch;
    const fresh = !this.checking;
    void this.check().then((alive) => {
      if (this.closed || this.heal || this.epoch !== epoch) return;
      // A check started before (in another epoch) says nothing about this one: check again.
      if (alive || !fresh) this.scheduleCheck();
      else this.trigger('data plane check failed');
    });
  }

  /** The check in flight, or a new one: one at a time per connection. */
  private check(): Promise<boolean> {
    if (this.checking) return this.checking;
    const live = this.s.liveness;
    if (!live) return Promise.resolve(false);
    const conn = this.conn;
    const p = Promise.resolve()
      .then(() => live(conn))
      .then(
        (ok) => ok === true,
        (err: unknown) => {
          this.log.debug('heal: liveness check failed', { id: this.id, err: err instanceof Error ? err.message : String(err) });
          return false;
        },
      )
      .then((ok) => {
        if (this.checking === p) this.checking = undefined;
        return ok;
      });
    this.checking = p;
    return p;
  }

  // --- heal ---

  private trigger(trigger: HealTrigger, detail?: string): void {
    if (this.closed || this.heal) return;
    this.epoch++;
    this.unwatch();
    this.stopChecks();
    const h: Heal = {
      trigger,
      detail,
      started: this.clock.now(),
      attempts: 0,
      reselect: trigger === 'data plane check failed' || !this.s.liveness,
      backoff: this.s.initialMs,
      inFlight: false,
      over: new AbortController(),
      stopTimer: undefined,
    };
    this.heal = h;
    this.log.info('heal: starting', { id: this.id, trigger, detail, reselect: h.reselect || undefined });
    this.report(h);
    this.s.observe?.started(trigger);
    void this.next(h);
  }

  /** Decides on reselect (checking the data plane unless it is known dead), then tries once. */
  private async next(h: Heal): Promise<void> {
    if (!h.reselect) {
      const alive = await this.check();
      if (this.heal !== h) return;
      if (!alive) {
        h.reselect = true;
        this.log.info('heal: data plane is down, reselecting', { id: this.id });
      }
    }
    h.attempts++;
    h.inFlight = true;
    const err = await this.factory.request({ reselect: h.reselect, cancel: h.over.signal });
    h.inFlight = false;
    if (this.heal !== h) return; // recovered, or stopped
    if (!err) {
      // A success would have ended the heal at this element: the event was skipped because
      // the connection is gone (closed while begin held it down).
      this.stop();
      return;
    }
    this.log.warn('heal: attempt failed', { id: this.id, attempt: h.attempts, reselect: h.reselect, retryInMs: h.backoff, err: err.message });
    this.report(h);
    const wait = h.backoff;
    h.backoff = Math.min(h.backoff * 2, this.s.maxMs);
    h.stopTimer = this.clock.after(wait, () => {
      h.stopTimer = undefined;
      void this.next(h);
    });
  }

  private recovered(): void {
    const h = this.heal;
    if (!h) return;
    this.endHeal();
    this.report(h, this.clock.now());
    this.s.observe?.recovered(h.trigger, h.reselect, this.clock.now() - h.started);
    this.log.info('heal: recovered', {
      id: this.id,
      trigger: h.trigger,
      tookMs: this.clock.now() - h.started,
      attempts: h.attempts,
      reselected: h.reselect,
    });
  }

  private endHeal(): void {
    const h = this.heal;
    if (!h) return;
    this.heal = undefined;
    this.epoch++;
    h.over.abort();
    h.stopTimer?.();
    h.stopTimer = undefined;
  }
}

export function healClient(opts: HealOptions): HealClient {
  const s: Settings = {
    monitor: opts.monitor,
    onHeal: opts.onHeal,
    liveness: opts.liveness,
    intervalMs: (() => {
      const i = opts.livenessIntervalMs ?? DEFAULT_LIVENESS_INTERVAL_MS;
      return typeof i === 'function' ? i : () => i;
    })(),
    initialMs: opts.retry?.initialMs ?? DEFAULT_RETRY_INITIAL_MS,
    maxMs: opts.retry?.maxMs ?? DEFAULT_RETRY_MAX_MS,
    observe: opts.observe,
  };
  const healers = new Map<string, Healer>();
  const gone = (h: Healer) => {
    if (healers.get(h.id) === h) healers.delete(h.id);
  };

  return {
    async request(ctx, req) {
      // Throws if the chain lacks begin: check before anything is set up.
      const factory = eventFactory(ctx);
      const healAtStart = healers.get(req.connection?.id ?? '')?.heal;
      const conn = await nextClient(ctx).request(ctx, req);
      const id = conn.id || req.connection?.id || '';
      let h = healers.get(id);
      if (!h) {
        h = new Healer(id, s, gone);
        healers.set(id, h);
      }
      h.succeeded(ctx, factory, conn, healAtStart);
      return conn;
    },
    async close(ctx, conn) {
      const h = healers.get(conn.id ?? '');
      if (h?.closingForReselect()) h.unwatch();
      else h?.stop();
      await nextClient(ctx).close(ctx, conn);
    },
    healing: (id) => healers.get(id)?.heal !== undefined,
    get size() {
      return healers.size;
    },
  };
}
