/**
 * setpayload (NS server): a network service registered without a payload gets `IP`, as
 * upstream registry-k8s and registry-memory do. Find and Unregister pass through.
 */
import { NsRegistry, nextNsRegistry } from '../../core/registry';

export const DEFAULT_PAYLOAD = 'IP';

export function setPayloadNsRegistry(payload: string = DEFAULT_PAYLOAD): NsRegistry {
  return {
    register: (ctx, ns) => nextNsRegistry(ctx).register(ctx, ns.payload ? ns : { ...ns, payload }),
    find: (ctx, query) => nextNsRegistry(ctx).find(ctx, query),
    unregister: (ctx, ns) => nextNsRegistry(ctx).unregister(ctx, ns),
  };
}
