/** Small helpers for registry unit tests. */
import { Ctx } from '../../../src/core/ctx';
import { FakeClock } from '../../../src/core/clock';

/** Lets pending promise callbacks (several hops deep) run. */
export async function flush(rounds = 10): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}

/** Consumes an async iterable in the background, recording items and how it ended. */
export function collect<T>(it: AsyncIterable<T>): { items: T[]; done: Promise<void>; error: () => unknown; ended: () => boolean } {
  const items: T[] = [];
  let error: unknown;
  let ended = false;
  const done = (async () => {
    try {
      for await (const x of it) items.push(x);
    } catch (e) {
      error = e;
    } finally {
      ended = true;
    }
  })();
  return { items, done, error: () => error, ended: () => ended };
}

/** A ctx on a fake clock, and its abort controller. */
export function fakeCtx(clock = new FakeClock()): { ctx: Ctx; clock: FakeClock; ac: AbortController } {
  const ac = new AbortController();
  return { ctx: Ctx.background({ clock, signal: ac.signal }), clock, ac };
}
