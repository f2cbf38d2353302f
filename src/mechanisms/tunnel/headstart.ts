/**
 * A dataplane's prepare() started alongside the request, settled without unhandled
 * rejections: take() hands its result to create() (rethrowing its failure there), drop()
 * removes it when the answer does not need it. Either may be called once.
 */
import type { PrepareArgs, TunnelDataplane } from './dataplane';

export interface HeadStart {
  take(): Promise<unknown>;
  drop(): Promise<void>;
}

export function headStart<L, P, D>(dp: TunnelDataplane<L, P, D>, args: PrepareArgs<L, P>): HeadStart | undefined {
  if (!dp.prepare) return undefined;
  const settled = dp.prepare(args).then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
  return {
    async take() {
      const r = await settled;
      if (!r.ok) throw r.error;
      return r.value;
    },
    async drop() {
      const r = await settled;
      if (r.ok) await dp.discard?.(r.value).catch(() => {});
    },
  };
}
