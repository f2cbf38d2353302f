/**
 * setregistrationtime (NSE server): sets `initial_registration_time` on an NSE's first Register
 * (to the time the NSE sent, if any, else now) and keeps that value on every refresh, whatever
 * the refresh carries. Unregister (including an expiry passing through) forgets it, so a later
 * registration starts afresh. State is per NSE name, kept in this instance.
 *
 * Chain placement: after `expire`, so that expiry unregisters pass through here.
 */
import type { Timestamp } from '../../api';
import { fromTimestamp, toTimestamp } from '../../api/time';
import { NseRegistry, nextNseRegistry } from '../../core/registry';

export function setRegistrationTimeNseRegistry(): NseRegistry {
  const first = new Map<string, Timestamp>();
  return {
    async register(ctx, nse) {
      const name = nse.name ?? '';
      const known = first.get(name);
      const sent = fromTimestamp(nse.initial_registration_time) !== undefined ? nse.initial_registration_time : undefined;
      const initial = known ?? sent ?? toTimestamp(ctx.clock.now());
      const resp = await nextNseRegistry(ctx).register(ctx, { ...nse, initial_registration_time: initial });
      if (!known) first.set(name, initial);
      return resp;
    },
    find: (ctx, query) => nextNseRegistry(ctx).find(ctx, query),
    async unregister(ctx, nse) {
      first.delete(nse.name ?? '');
      await nextNseRegistry(ctx).unregister(ctx, nse);
    },
  };
}
