/**
 * The tunnel elements' bookkeeping, one session per connection id: this end's values (keys,
 * port, VNI) and, once made, its device. discard() removes the device and releases the values,
 * whatever state the session is in.
 *
 * After an agent restart, open() first asks the dataplane to adopt the end the previous run
 * left for the id; an adopted session counts as fresh (a Request that fails removes it, as it
 * would a new one), but it already has its device, so nothing is made again.
 */
import type { Connection } from '../../api';
import type { Ctx } from '../../core/ctx';
import { recordExpiry } from '../../networkservice/utils';
import type { TunnelDataplane } from './dataplane';

export interface Session<L, D> {
  local: L;
  device?: D;
}

export class TunnelSessions<L, P, D> {
  private readonly byId = new Map<string, Session<L, D>>();
  constructor(private readonly dp: TunnelDataplane<L, P, D>) {}

  get(id: string): Session<L, D> | undefined {
    return this.byId.get(id);
  }

  /**
   * The session of `id`: the existing one, or one adopted from a previous run, or one opened
   * with freshly allocated values; `fresh` is false only for an existing one.
   */
  async open(id: string, allocate: () => Promise<L>): Promise<{ session: Session<L, D>; fresh: boolean }> {
    const existing = this.byId.get(id);
    if (existing) return { session: existing, fresh: false };
    const back = await this.dp.adopt?.(id);
    const again = this.byId.get(id);
    if (again) return { session: again, fresh: false };
    const session: Session<L, D> = back ? { local: back.local, device: back.device } : { local: await allocate() };
    this.byId.set(id, session);
    return { session, fresh: true };
  }

  async discard(id: string, s: Session<L, D>): Promise<void> {
    if (this.byId.get(id) === s) this.byId.delete(id);
    try {
      if (s.device) await this.dp.remove(s.device);
    } finally {
      this.dp.release(s.local);
      this.dp.forget?.(id);
    }
  }

  /** Records the session's end for a restarted agent (after create and each refresh). */
  persist(id: string, s: Session<L, D>, conn: Connection, now: number): void {
    if (s.device && this.byId.get(id) === s) this.dp.persist?.(id, s.local, s.device, recordExpiry(conn, now));
  }

  /**
   * A first request that failed after the other side answered: close that side again (its
   * connection is `closeNext`'s to undo), then remove this end. Best effort; never throws.
   */
  async abandon(ctx: Ctx, id: string, s: Session<L, D>, closeNext: (ctx: Ctx) => Promise<void>): Promise<void> {
    const [closeCtx, done] = ctx.detached(5_000);
    await closeNext(closeCtx).catch(() => {});
    done();
    await this.discard(id, s).catch(() => {});
  }

  /** Close: remove the end of connection `id`, if any; a failure is logged, Close goes on. */
  async close(ctx: Ctx, id: string): Promise<void> {
    const s = this.byId.get(id);
    if (s) await this.discard(id, s).catch((err) => ctx.log.warn('removing tunnel end failed', { id, error: err }));
  }

  describe(id: string): Record<string, unknown> | undefined {
    const s = this.byId.get(id);
    return s?.device ? this.dp.describe(s.device) : undefined;
  }
}
