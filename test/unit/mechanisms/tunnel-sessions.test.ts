// The tunnel elements' per-connection bookkeeping against an in-memory dataplane: open (new,
// existing, taken back after a restart), discard and close whatever state a session is in,
// persist, abandon, describe.
import { describe, expect, it } from 'vitest';
import type { Connection } from '../../../src/api';
import { Ctx } from '../../../src/core/ctx';
import { createLogger } from '../../../src/core/log';
import type { TunnelDataplane } from '../../../src/mechanisms/tunnel/dataplane';
import { TunnelSessions } from '../../../src/mechanisms/tunnel/sessions';

type Local = { n: number };
type Device = { n: number };

/** A dataplane in memory; `left` holds the ends a previous run left, by connection id. */
function fakeDataplane(opts: { left?: Record<string, number>; failRemove?: boolean; slowAdopt?: Promise<void> } = {}) {
  const events: string[] = [];
  const left = new Map(Object.entries(opts.left ?? {}));
  const dp: TunnelDataplane<Local, unknown, Device> = {
    type: 'FAKE',
    payload: 'IP',
    overhead: { v4: 0, v6: 0 },
    allocate: async () => ({ n: 0 }),
    release: (l) => void events.push(`release ${l.n}`),
    advertise: () => ({}),
    peerOf: () => ({}),
    create: async ({ local }) => ({ n: local.n }),
    update: async () => {},
    async remove(d) {
      events.push(`remove ${d.n}`);
      if (opts.failRemove) throw new Error('device busy');
    },
    async adopt(id) {
      await opts.slowAdopt;
      const n = left.get(id);
      if (n === undefined) return undefined;
      left.delete(id);
      events.push(`adopt ${id}`);
      return { local: { n }, device: { n } };
    },
    persist: (id, l, _d, expires) => void events.push(`persist ${id} ${l.n} ${expires}`),
    forget: (id) => void events.push(`forget ${id}`),
    describe: (d) => ({ n: d.n }),
  };
  return { dp, events };
}

let counter = 0;
const allocate = async (): Promise<Local> => ({ n: ++counter });
const conn = (expiresMs: number): Connection => ({ id: 'c1', path: { index: 0, path_segments: [{ expires: new Date(expiresMs).toISOString() }] } }) as unknown as Connection;

describe('tunnel sessions', () => {
  it('opens a fresh session once, then hands out the same one', async () => {
    const { dp, events } = fakeDataplane();
    const s = new TunnelSessions(dp);
    const a = await s.open('c1', allocate);
    expect(a.fresh).toBe(true);
    expect(a.session.device).toBeUndefined();
    const b = await s.open('c1', allocate);
    expect(b).toEqual({ session: a.session, fresh: false });
    expect(s.get('c1')).toBe(a.session);
    expect(events).toEqual([]);
  });

  it('takes back the end a previous run left instead of allocating: fresh, with its device', async () => {
    const { dp, events } = fakeDataplane({ left: { c1: 7 } });
    const s = new TunnelSessions(dp);
    let allocated = 0;
    const { session, fresh } = await s.open('c1', async () => ({ n: ++allocated }));
    expect(fresh).toBe(true);
    expect(session).toEqual({ local: { n: 7 }, device: { n: 7 } });
    expect(allocated).toBe(0);
    expect(events).toEqual(['adopt c1']);
    expect(s.describe('c1')).toEqual({ n: 7 });
  });

  it('an open that waited for an adoption another open finished gets that session', async () => {
    let go!: () => void;
    const { dp } = fakeDataplane({ left: { c1: 7 }, slowAdopt: new Promise<void>((r) => (go = r)) });
    const s = new TunnelSessions(dp);
    const first = s.open('c1', allocate);
    const second = s.open('c1', allocate);
    go();
    const [a, b] = await Promise.all([first, second]);
    expect(a.session).toBe(b.session);
    expect(a.session.local).toEqual({ n: 7 });
    expect([a.fresh, b.fresh]).toEqual([true, false]);
  });

  it('discard removes the device, releases the values and forgets the record, even when removing fails', async () => {
    const { dp, events } = fakeDataplane({ failRemove: true });
    const s = new TunnelSessions(dp);
    const { session } = await s.open('c1', allocate);
    session.device = { n: session.local.n };
    await expect(s.discard('c1', session)).rejects.toThrow('device busy');
    expect(events).toEqual([`remove ${session.local.n}`, `release ${session.local.n}`, 'forget c1']);
    expect(s.get('c1')).toBeUndefined();
    expect(s.describe('c1')).toBeUndefined();
  });

  it('a session without a device only gives its values back', async () => {
    const { dp, events } = fakeDataplane();
    const s = new TunnelSessions(dp);
    const { session } = await s.open('c1', allocate);
    await s.discard('c1', session);
    expect(events).toEqual([`release ${session.local.n}`, 'forget c1']);
  });

  it('persists only a session that has its device and is still the current one', async () => {
    const { dp, events } = fakeDataplane();
    const s = new TunnelSessions(dp);
    const { session } = await s.open('c1', allocate);
    const now = Date.parse('2026-01-01T00:00:00Z');
    s.persist('c1', session, conn(now + 60_000), now);
    expect(events).toEqual([]); // no device yet
    session.device = { n: session.local.n };
    s.persist('c1', session, conn(now + 60_000), now);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatch(new RegExp(`^persist c1 ${session.local.n} \\d+$`));
    expect(Number(events[0]!.split(' ')[3])).toBeGreaterThanOrEqual(now + 60_000);
    await s.discard('c1', session);
    s.persist('c1', session, conn(now + 60_000), now); // no longer current
    expect(events.filter((e) => e.startsWith('persist'))).toHaveLength(1);
  });

  it('close logs a failed removal and goes on; abandon closes the far side first and never throws', async () => {
    const lines: string[] = [];
    const ctx = Ctx.background().withLog(createLogger({ level: 'warn', write: (l) => lines.push(l) }));
    const { dp, events } = fakeDataplane({ failRemove: true });
    const s = new TunnelSessions(dp);
    const one = (await s.open('c1', allocate)).session;
    one.device = { n: one.local.n };
    await s.close(ctx, 'c1');
    expect(lines.join('\n')).toMatch(/removing tunnel end failed/);
    expect(s.get('c1')).toBeUndefined();
    await s.close(ctx, 'c1'); // nothing left: nothing happens
    const two = (await s.open('c2', allocate)).session;
    two.device = { n: two.local.n };
    const order: string[] = [];
    await s.abandon(ctx, 'c2', two, async () => {
      order.push('close far side');
      throw new Error('far side unreachable');
    });
    expect(order).toEqual(['close far side']);
    expect(events.slice(-3)).toEqual([`remove ${two.local.n}`, `release ${two.local.n}`, 'forget c2']);
  });
});
