// The spare pool's state machine against in-memory devices: when spares are made, which one a
// take gets, what happens to a spare that died or cannot be made, leaving a namespace nobody
// uses, keeping closed ends, and close.
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../../src/core/log';
import { SparePool, type SpareDevices } from '../../../../src/mechanisms/wireguard/spares';

interface FakeSpare {
  id: number;
  netns?: string;
  usable: boolean;
}

const A = '/run/netns/a';
const B = '/run/netns/b';

/** Devices that live in memory; `events` records what the pool asked for. */
function fakeDevices(fail: { start?: () => boolean; wait?: (netns: string) => boolean } = {}) {
  let next = 0;
  const live = new Set<FakeSpare>();
  const events: string[] = [];
  const devices: SpareDevices<FakeSpare> = {
    async start() {
      await Promise.resolve();
      if (fail.start?.()) throw new Error('cannot start');
      const s: FakeSpare = { id: ++next, usable: true };
      live.add(s);
      events.push(`start ${s.id}`);
      return s;
    },
    async wait(s, netns) {
      await Promise.resolve();
      if (fail.wait?.(netns)) throw new Error(`cannot move into ${netns}`);
      s.netns = netns;
      events.push(`wait ${s.id} ${netns}`);
    },
    async drop(s) {
      live.delete(s);
      events.push(`drop ${s.id}`);
    },
    waitsIn: (s) => s.netns,
    usable: (s) => s.usable,
  };
  return { devices, live, events };
}

const pools: SparePool<FakeSpare>[] = [];
function pool(devices: SpareDevices<FakeSpare>, count: number, warns: string[] = []) {
  const log = createLogger({ level: 'warn', write: (line) => warns.push(line) });
  const p = new SparePool(devices, { count, refillDelayMs: 5, homeIdleMs: 20, log });
  pools.push(p);
  return p;
}
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()));
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, ms = 2000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await sleep(2);
  return cond();
}

describe('spare pool', () => {
  it('makes nothing until WireGuard is first used, then fills up to its count in the host namespace', async () => {
    const { devices, live } = fakeDevices();
    const p = pool(devices, 2);
    await sleep(30);
    expect(live.size).toBe(0);
    expect(await p.take(undefined)).toBeUndefined(); // none yet: the caller starts its own device
    expect(await until(() => p.ready.length === 2)).toBe(true);
    expect(p.ready.every((s) => s.netns === undefined)).toBe(true);
    await sleep(30);
    expect(live.size).toBe(2); // no more than the count
  });

  it('refills once takes pause, and hands out a spare waiting in the asked namespace first', async () => {
    const { devices, live } = fakeDevices();
    const p = pool(devices, 2);
    await p.take(undefined);
    await until(() => p.ready.length === 2);
    p.movedTo(A); // a connection end was moved into A: spares wait there next time
    const first = await p.take(undefined);
    const second = await p.take(undefined);
    expect(first?.netns).toBeUndefined();
    expect(second?.netns).toBeUndefined();
    expect(await until(() => p.ready.length === 2)).toBe(true);
    expect(p.ready.map((s) => s.netns)).toEqual([A, A]);
    expect(live.size).toBe(4); // the two taken are the caller's now
    // any spare when none waits where asked; one waiting there when there is
    expect((await p.take(B))?.netns).toBe(A);
    p.putBack({ id: 99, usable: true });
    expect((await p.take(undefined))?.id).toBe(99);
    expect((await p.take(A))?.netns).toBe(A);
  });

  it('drops a spare that died instead of handing it out', async () => {
    const { devices, live, events } = fakeDevices();
    const p = pool(devices, 2);
    await p.take(undefined);
    await until(() => p.ready.length === 2);
    const [dead, alive] = p.ready;
    dead!.usable = false;
    expect(await p.take(undefined)).toBe(alive);
    expect(live.has(dead!)).toBe(false);
    expect(events).toContain(`drop ${dead!.id}`);
  });

  it('gives up making spares while none can be started, and tries again at the next take', async () => {
    let broken = true;
    const warns: string[] = [];
    const { devices, live } = fakeDevices({ start: () => broken });
    const p = pool(devices, 2, warns);
    await p.take(undefined);
    expect(await until(() => warns.length === 1)).toBe(true);
    await sleep(30);
    expect(warns).toHaveLength(1); // one failure, no retry loop
    expect(warns[0]).toMatch(/cannot make a spare WireGuard device/);
    expect(live.size).toBe(0);
    broken = false;
    await p.take(undefined);
    expect(await until(() => p.ready.length === 2)).toBe(true);
  });

  it('a spare that cannot be moved into home is dropped, and spares wait in the host namespace again', async () => {
    const warns: string[] = [];
    const { devices, live } = fakeDevices({ wait: (ns) => ns === A });
    const p = pool(devices, 2, warns);
    p.movedTo(A);
    await p.take(A);
    expect(await until(() => p.ready.length === 2)).toBe(true);
    expect(p.home).toBeUndefined();
    expect(p.ready.every((s) => s.netns === undefined)).toBe(true);
    expect(live.size).toBe(2); // the one that failed is gone
    expect(warns).toHaveLength(1);
  });

  it('leaves home once the last connection end there is gone, and refills in the host namespace', async () => {
    const { devices, live } = fakeDevices();
    const p = pool(devices, 2);
    p.movedTo(A);
    p.endArrived(A);
    p.endArrived(A);
    await p.take(A);
    await until(() => p.ready.length === 2);
    const waiting = p.ready;
    expect(waiting.map((s) => s.netns)).toEqual([A, A]);
    p.endLeft(A);
    await sleep(40);
    expect(p.home).toBe(A); // one end is still there
    p.endLeft(A);
    expect(await until(() => p.home === undefined && waiting.every((s) => !live.has(s)))).toBe(true);
    expect(await until(() => p.ready.length === 2)).toBe(true);
    expect(p.ready.every((s) => s.netns === undefined)).toBe(true);
  });

  it('keeps a closed end in home as a spare only while one is missing', async () => {
    const { devices, live } = fakeDevices();
    const p = pool(devices, 1);
    p.movedTo(A);
    const end: FakeSpare = { id: 100, usable: true };
    live.add(end);
    let recycled = 0;
    const recycle = async () => {
      recycled++;
      end.netns = A;
      return end;
    };
    expect(await p.keep(B, recycle)).toBe(false); // not home: the caller deletes it
    expect(await p.keep(A, recycle)).toBe(true);
    expect(p.ready).toEqual([end]);
    expect(await p.keep(A, recycle)).toBe(false); // full
    expect(recycled).toBe(1);
    // a recycle that failed removed the device itself: gone either way
    await p.take(A);
    expect(await p.keep(A, async () => undefined)).toBe(true);
  });

  it('close removes every spare, waits for an end being kept, and makes none again', async () => {
    const { devices, live } = fakeDevices();
    const p = pool(devices, 2);
    p.movedTo(A);
    await p.take(undefined);
    await until(() => p.ready.length === 2);
    const end: FakeSpare = { id: 100, usable: true };
    live.add(end);
    await p.take(undefined); // one missing now
    let finish!: () => void;
    const keeping = p.keep(A, () => new Promise<FakeSpare>((r) => (finish = () => r(end))));
    const closing = p.close();
    finish();
    await closing;
    expect(await keeping).toBe(true);
    expect(live.has(end)).toBe(false); // kept after close began: dropped
    expect(p.ready).toHaveLength(0);
    const left = live.size; // only the one the take handed out
    expect(left).toBe(1);
    expect(await p.take(undefined)).toBeUndefined();
    await sleep(30);
    expect(live.size).toBe(left);
  });
});
