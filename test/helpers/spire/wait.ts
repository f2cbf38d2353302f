/** Polls `check` until it returns a truthy value or `ms` pass (timers, not the wall clock). */
export async function waitFor<T>(check: () => T | undefined | false | null, ms = 5000, what = 'condition'): Promise<T> {
  const step = 10;
  for (let waited = 0; ; waited += step) {
    const v = check();
    if (v) return v;
    if (waited >= ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, step));
  }
}

/** Resolves on the next `event` from `emitter`, or rejects after `ms`. */
export function nextEvent<T>(emitter: { once(e: string, fn: (v: T) => void): unknown; off(e: string, fn: (v: T) => void): unknown }, event: string, ms = 5000): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`timed out after ${ms} ms waiting for ${event}`));
    }, ms);
    const on = (v: T) => {
      clearTimeout(t);
      resolve(v);
    };
    emitter.once(event, on);
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
