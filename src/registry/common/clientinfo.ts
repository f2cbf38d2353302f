/**
 * clientinfo (NSE server, nsmgr side): adds this host's labels (nodeName, and podName /
 * clusterName when given) to every `network_service_labels[svc]` the NSE sent. A label the NSE
 * already has is never overwritten; services listed only in `network_service_names` get no
 * label set (as upstream). The caller's object is not mutated.
 */
import { NseRegistry, nextNseRegistry } from '../../core/registry';

export interface ClientInfo {
  nodeName?: string;
  podName?: string;
  clusterName?: string;
}

export function clientInfoNseRegistry(info: ClientInfo): NseRegistry {
  const add: [string, string][] = Object.entries(info).filter((e): e is [string, string] => typeof e[1] === 'string' && e[1] !== '');
  return {
    register(ctx, nse) {
      const labels: NonNullable<typeof nse.network_service_labels> = {};
      for (const [svc, l] of Object.entries(nse.network_service_labels ?? {})) {
        const merged = { ...(l?.labels ?? {}) };
        for (const [k, v] of add) if (!(k in merged)) merged[k] = v;
        labels[svc] = { ...l, labels: merged };
      }
      return nextNseRegistry(ctx).register(ctx, { ...nse, network_service_labels: labels });
    },
    find: (ctx, query) => nextNseRegistry(ctx).find(ctx, query),
    unregister: (ctx, nse) => nextNseRegistry(ctx).unregister(ctx, nse),
  };
}
