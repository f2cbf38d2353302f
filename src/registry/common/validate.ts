/**
 * validate (NS and NSE server): what a registration carries is checked before it is stored, so
 * a name, URL or label the agent cannot act on is refused at Register (INVALID_ARGUMENT naming
 * the field) instead of failing every client that later selects it. Find and Unregister pass.
 * Placement: first in the registry server chains.
 */
import type { NetworkService, NetworkServiceEndpoint } from '../../api';
import { AgentError } from '../../core/errors';
import { NsRegistry, NseRegistry, nextNsRegistry, nextNseRegistry } from '../../core/registry';
import { validateLabels, validateServiceName } from '../../core/validate';

/** The URL schemes an agent dials (tcp://host:port, unix:///path). */
function validateUrl(url: string, key: string): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new AgentError('INVALID_ARGUMENT', `${key} ${JSON.stringify(url.slice(0, 200))} is not a URL`);
  }
  if (u.protocol === 'tcp:' ? !u.hostname || !u.port : u.protocol === 'unix:' ? !u.pathname.startsWith('/') : true) {
    throw new AgentError('INVALID_ARGUMENT', `${key} ${JSON.stringify(url.slice(0, 200))} must be tcp://HOST:PORT or unix:///PATH`);
  }
}

export function checkEndpoint(nse: NetworkServiceEndpoint): void {
  validateServiceName(nse.name ?? '', 'network service endpoint name');
  if (nse.url) validateUrl(nse.url, `network service endpoint ${nse.name} url`);
  for (const s of nse.network_service_names ?? []) validateServiceName(s, `network service endpoint ${nse.name}: network service name`);
  for (const [s, l] of Object.entries(nse.network_service_labels ?? {})) {
    validateServiceName(s, `network service endpoint ${nse.name}: network_service_labels key`);
    validateLabels(l?.labels, `network service endpoint ${nse.name}: labels of ${s}`);
  }
}

export function checkService(ns: NetworkService): void {
  validateServiceName(ns.name ?? '', 'network service name');
  (ns.matches ?? []).forEach((m, i) => {
    validateLabels(m.source_selector, `network service ${ns.name}: matches[${i}].source_selector`);
    (m.routes ?? []).forEach((r, j) => validateLabels(r.destination_selector, `network service ${ns.name}: matches[${i}].routes[${j}].destination_selector`));
  });
}

export function validateNseRegistry(): NseRegistry {
  return {
    register: async (ctx, nse) => {
      checkEndpoint(nse);
      return nextNseRegistry(ctx).register(ctx, nse);
    },
    find: (ctx, query) => nextNseRegistry(ctx).find(ctx, query),
    unregister: (ctx, nse) => nextNseRegistry(ctx).unregister(ctx, nse),
  };
}

export function validateNsRegistry(): NsRegistry {
  return {
    register: async (ctx, ns) => {
      checkService(ns);
      return nextNsRegistry(ctx).register(ctx, ns);
    },
    find: (ctx, query) => nextNsRegistry(ctx).find(ctx, query),
    unregister: (ctx, ns) => nextNsRegistry(ctx).unregister(ctx, ns),
  };
}
