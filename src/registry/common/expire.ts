/**
 * expire (NSE server, as upstream NSM sdk registry/common/expire): bounds how long an NSE
 * registration lives without a refresh.
 *
 * - Register: expiration_time = now + defaultExpiration, applied only if it is earlier than
 *   the value the NSE sent (or the NSE sent none). If the entry that comes back expires even
 *   earlier, that time is used. A timer then unregisters the entry through the rest of the
 *   chain at expiration_time (watchers see deleted=true). Every Register of the same name
 *   re-arms the timer; Unregister disarms it.
 * - Find: entries already past their expiration_time are skipped (deleted responses pass).
 * - Timers use ctx.clock of the Register call. `signal` (the server's lifetime) disarms all.
 *
 * Differences from upstream: upstream also caps by the caller's and its own token expiry
 * (tokens are not wired into the registry yet) and fires at expiration_time minus the Register
 * call's remaining deadline; we fire at expiration_time, so a long client deadline cannot
 * expire an entry early.
 *
 * Chain placement: before the elements that keep per-NSE state (setregistrationtime) and the
 * store, since the expiry unregister runs only the elements after this one.
 */
import type { NetworkServiceEndpoint } from '../../api';
import { fromTimestamp, toTimestamp } from '../../api/time';
import { Ctx } from '../../core/ctx';
import { NseRegistry, nextNseRegistry } from '../../core/registry';

export const DEFAULT_EXPIRATION_MS = 60_000;
/** How long an expiry unregister may take. */
const UNREGISTER_TIMEOUT_MS = 15_000;

export interface ExpireOptions {
  /** Milliseconds an NSE registration lives without refresh; default 60 s; 0 disables the cap. */
  defaultExpiration?: number;
  /** Aborting it disarms every timer (server shutdown). */
  signal?: AbortSignal;
}

export function expireNseRegistry(opts: ExpireOptions = {}): NseRegistry {
  const defaultExpiration = opts.defaultExpiration ?? DEFAULT_EXPIRATION_MS;
  const timers = new Map<string, () => void>();
  opts.signal?.addEventListener('abort', () => {
    for (const stop of timers.values()) stop();
    timers.clear();
  });

  const disarm = (name: string) => {
    timers.get(name)?.();
    timers.delete(name);
  };

  const arm = (ctx: Ctx, entry: NetworkServiceEndpoint, at: number) => {
    const name = entry.name ?? '';
    const next = nextNseRegistry(ctx);
    disarm(name);
    if (opts.signal?.aborted) return;
    const stop = ctx.clock.after(at - ctx.clock.now(), () => {
      if (timers.get(name) !== stop) return;
      timers.delete(name);
      ctx.log.info('registration expired', { nse: name });
      const [uctx, cancel] = ctx.detached(UNREGISTER_TIMEOUT_MS);
      next
        .unregister(uctx, entry)
        .catch((err: unknown) => ctx.log.warn('unregister of expired entry failed', { nse: name, err }))
        .finally(cancel);
    });
    timers.set(name, stop);
  };

  return {
    async register(ctx, nse) {
      const sent = fromTimestamp(nse.expiration_time);
      let at = defaultExpiration > 0 ? ctx.clock.now() + defaultExpiration : sent;
      if (at !== undefined && (sent === undefined || at < sent)) nse = { ...nse, expiration_time: toTimestamp(at) };
      else at = sent;
      const resp = await nextNseRegistry(ctx).register(ctx, nse);
      const got = fromTimestamp(resp.expiration_time);
      if (got !== undefined && (at === undefined || got < at)) at = got;
      if (at !== undefined) arm(ctx, resp, at);
      return resp;
    },
    async *find(ctx, query) {
      for await (const r of nextNseRegistry(ctx).find(ctx, query)) {
        const exp = fromTimestamp(r.network_service_endpoint?.expiration_time);
        if (!r.deleted && exp !== undefined && exp <= ctx.clock.now()) continue;
        yield r;
      }
    },
    async unregister(ctx, nse) {
      disarm(nse.name ?? '');
      await nextNseRegistry(ctx).unregister(ctx, nse);
    },
  };
}
