// SPDX-License-Identifier: Apache-2.0
/**
 * Spare WireGuard devices: started ahead of need and given their own key pair and port, so that
 * a connection does not wait for a wireguard-go to start and only adds its peer. Kept only once
 * WireGuard is in use (an agent that never tunnels runs no idle wireguard-go), and removed by
 * close().
 *
 * Where they wait: moving a link into another namespace costs the kernel an RCU barrier while it
 * holds the RTNL lock, which every other link, address and route change on the host waits for.
 * So spares wait, down and under their temporary name, in the namespace where the last
 * connection end was moved (`home`): usually the namespace of the endpoint or of the client this
 * agent serves; a connection there only renames and raises its spare. A spare elsewhere is still
 * used (moved). Spares leave `home` once no connection end has been there for `homeIdleMs` (its
 * endpoint removed, its client gone): nothing of the agent's lingers in a namespace nobody uses
 * it for.
 *
 * The pool's states: empty and idle (nothing taken yet) → filling (one spare made at a time, up
 * to `count`, `refillDelayMs` after the last take, so that making spares does not compete with
 * the connection that took one) → full; a spare that cannot be made leaves `home` unset (its
 * namespace may be gone) and the next waits in the host namespace; closed: every spare removed,
 * none made again. A closed connection end in `home` may be kept as a spare instead of deleted
 * ({@link SparePool.keep}) when one is missing.
 *
 * The pool holds spares of type S through {@link SpareDevices}; it never touches a device itself
 * (unit tests drive it with in-memory fakes).
 */
import type { Logger } from '../../core/log';

/** What the pool needs of its devices. */
export interface SpareDevices<S> {
  /** A new spare, running in the host namespace with its own values; leaves nothing behind when it throws. */
  start(): Promise<S>;
  /** Moves a spare, down and under its temporary name, into `netns`. */
  wait(spare: S, netns: string): Promise<void>;
  /** Removes a spare and gives back what it holds. */
  drop(spare: S): Promise<void>;
  /** The namespace a spare waits in (undefined: the host namespace). */
  waitsIn(spare: S): string | undefined;
  /** False once a spare can no longer be handed out (its process died). */
  usable(spare: S): boolean;
}

export interface SparePoolOptions {
  /** How many spares to keep (0: none). */
  count: number;
  /** Quiet time after the last take before spares are made again. */
  refillDelayMs: number;
  /** How long spares keep waiting in `home` after the last connection end there left. */
  homeIdleMs: number;
  log: Logger;
}

export class SparePool<S> {
  private readonly spares: S[] = [];
  private homeNs: string | undefined;
  private filling: Promise<void> | undefined;
  private closed = false;
  /** Connection ends per namespace (for leaving `home` once it is unused). */
  private readonly endsIn = new Map<string, number>();
  private idleTimer: NodeJS.Timeout | undefined;
  private evicting: Promise<void> | undefined;
  private refillTimer: NodeJS.Timeout | undefined;
  /** keep() calls in flight (close() waits for them). */
  private readonly keeping = new Set<Promise<boolean>>();

  constructor(
    private readonly devices: SpareDevices<S>,
    private readonly opts: SparePoolOptions,
  ) {}

  /** Where spares wait (undefined: the host namespace). */
  get home(): string | undefined {
    return this.homeNs;
  }

  /** The spares ready now (a copy). */
  get ready(): readonly S[] {
    return [...this.spares];
  }

  /** A connection end was moved into `netns` on the connect path: spares wait there next time. */
  movedTo(netns: string): void {
    this.homeNs = netns;
  }

  /**
   * A usable spare, one waiting in `netns` first, taken out of the pool (undefined: none).
   * Spares unusable by now are dropped. Schedules a refill.
   */
  async take(netns: string | undefined): Promise<S | undefined> {
    this.refillSoon(); // WireGuard is in use: spares are (re)made once takes pause
    for (;;) {
      const i = this.spares.findIndex((s) => this.devices.waitsIn(s) === netns);
      const spare = this.spares.splice(i >= 0 ? i : 0, 1)[0];
      if (spare === undefined) return undefined;
      if (this.devices.usable(spare)) return spare;
      await this.devices.drop(spare).catch(() => {});
    }
  }

  /** Gives back a spare take() returned and the caller did not use. */
  putBack(spare: S): void {
    this.spares.push(spare);
  }

  /**
   * Keeps a closed connection end that was in `netns` as a spare, if `netns` is home and a spare
   * is missing: `recycle` turns it into one waiting there (undefined: it failed, and removed the
   * device). False: not wanted, the caller deletes the device; true: kept, or gone either way.
   */
  async keep(netns: string, recycle: () => Promise<S | undefined>): Promise<boolean> {
    if (this.closed || netns !== this.homeNs || this.spares.length + (this.filling ? 1 : 0) >= this.opts.count) return false;
    const run = (async () => {
      const spare = await recycle();
      if (spare === undefined) return true;
      if (this.closed || this.homeNs !== netns || this.spares.length >= this.opts.count) await this.devices.drop(spare).catch(() => {});
      else this.spares.push(spare);
      return true;
    })();
    this.keeping.add(run);
    try {
      return await run;
    } finally {
      this.keeping.delete(run);
    }
  }

  /** A connection end now lives in `netns`. */
  endArrived(netns: string): void {
    this.endsIn.set(netns, (this.endsIn.get(netns) ?? 0) + 1);
  }

  /** A connection end left `netns`; the last one to leave `home` starts its idle timer. */
  endLeft(netns: string): void {
    const n = (this.endsIn.get(netns) ?? 1) - 1;
    if (n > 0) this.endsIn.set(netns, n);
    else this.endsIn.delete(netns);
    if (n > 0 || netns !== this.homeNs) return;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      this.leaveHome();
    }, this.opts.homeIdleMs);
    this.idleTimer.unref();
  }

  /** Removes every spare and makes none again. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.refillTimer) clearTimeout(this.refillTimer);
    if (this.idleTimer) clearTimeout(this.idleTimer);
    await this.evicting;
    await this.filling; // a spare being made now is dropped by the loop itself
    await Promise.allSettled([...this.keeping]); // an end being kept now is dropped by keep itself
    await Promise.all(this.spares.splice(0).map((s) => this.devices.drop(s).catch(() => {})));
  }

  private leaveHome(): void {
    if (this.homeNs === undefined || this.endsIn.has(this.homeNs)) return;
    const left = this.homeNs;
    this.homeNs = undefined;
    const evicted = this.spares.filter((s) => this.devices.waitsIn(s) === left);
    this.spares.splice(0, this.spares.length, ...this.spares.filter((s) => this.devices.waitsIn(s) !== left));
    const done: Promise<void> = Promise.all(evicted.map((s) => this.devices.drop(s).catch(() => {})))
      .then(() => this.refillSoon())
      .finally(() => {
        if (this.evicting === done) this.evicting = undefined;
      });
    this.evicting = done;
  }

  /**
   * Starting a wireguard-go costs tens of ms of CPU (fork, Go runtime, TUN, UAPI socket); made at
   * once, a spare would compete with the very connection that took one. So refilling waits until
   * takes have paused for `refillDelayMs`. A connection that finds no spare starts its own device.
   */
  private refillSoon(): void {
    if (this.refillTimer) clearTimeout(this.refillTimer);
    this.refillTimer = setTimeout(() => {
      this.refillTimer = undefined;
      this.refill();
    }, this.opts.refillDelayMs);
    this.refillTimer.unref();
  }

  private refill(): void {
    if (this.filling || this.closed || this.spares.length >= this.opts.count) return;
    this.filling = this.fill().finally(() => {
      this.filling = undefined;
    });
  }

  private async fill(): Promise<void> {
    while (!this.closed && this.spares.length < this.opts.count) {
      let spare: S | undefined;
      try {
        spare = await this.devices.start();
        const where = this.homeNs;
        if (where !== undefined) await this.devices.wait(spare, where);
        if (this.homeNs !== where) {
          await this.devices.drop(spare); // its namespace stopped being home meanwhile
          return;
        }
      } catch (err) {
        this.opts.log.warn('cannot make a spare WireGuard device', { error: err, netns: this.homeNs });
        if (spare !== undefined) await this.devices.drop(spare).catch(() => {});
        if (this.homeNs === undefined) return;
        this.homeNs = undefined; // its namespace may be gone: spares wait in the host namespace again
        continue;
      }
      if (this.closed || this.spares.length >= this.opts.count) await this.devices.drop(spare).catch(() => {}); // a kept end filled the place meanwhile
      else this.spares.push(spare);
    }
  }
}
