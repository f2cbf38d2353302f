/**
 * proxydns (NS and NSE registry elements), as upstream NSM's registry-proxy-dns: a name of the
 * form `name@domain` is served by that domain's registry.
 *
 * - Find: a query whose name (NSE: its name, else the first service name with a domain) names
 *   another domain goes to that domain's registry with the `@domain` suffix stripped from every
 *   name of that domain; the answers come back with it restored (names, service names, the
 *   keys of network_service_labels). An answer whose name already has a domain claims a third
 *   domain: it is dropped and logged. A query without a foreign domain goes to the next element
 *   (this agent's registry), this domain's own suffix stripped.
 * - Register / Unregister: this domain's suffix is stripped towards the registry and restored
 *   in the answer. Another domain's suffix is FOREIGN_DOMAIN, unless `floating` is set (the
 *   chain of this agent's own endpoints): then an NSE whose name and every service name carry
 *   the same other domain, or an NS of that domain, is registered into that domain's registry
 *   (upstream's floating registry, as registry-proxy-dns registers it), the suffix stripped
 *   there and restored in the answer.
 * - Endpoints found in another domain's registry are reached through that domain's nsmgr-proxy
 *   when DNS publishes one (`proxyOf`): their `url` is replaced by the proxy's, as upstream's
 *   registry-proxy-dns does; without one, their own URLs stand.
 * - Errors of a foreign registry name it and the domain; a find that gets no answer within the
 *   timeout is UNAVAILABLE rather than an empty answer.
 */
import type { NetworkService, NetworkServiceEndpoint } from '../../api';
import type { Ctx } from '../../core/ctx';
import { domainOf, isOtherDomain, sameDomain, splitDomain, stripDomain, withDomain } from '../../core/domain';
import { AgentError, COMPONENT } from '../../core/errors';
import { nextNseRegistry, nextNsRegistry, NSE_REGISTRY, NS_REGISTRY, NseRegistry, NsRegistry, tailNseRegistry, tailNsRegistry } from '../../core/registry';

/** A foreign domain's registry, resolved and dialed. */
export interface DomainRegistry {
  ns: NsRegistry;
  nse: NseRegistry;
  /** How errors name it: `tcp://host:port`. */
  url: string;
}

export interface ProxyDnsOptions {
  /** This agent's domain (agent.yaml `domain`), if it names one. */
  ownDomain?: string | undefined;
  /** The registry of a foreign domain; throws DOMAIN_NOT_FOUND when DNS has none. */
  registryOf: (ctx: Ctx, domain: string) => Promise<DomainRegistry>;
  /** A find in a foreign registry, at most. */
  timeoutMs: number;
  /** Registrations naming another domain go to that domain's registry (floating). */
  floating?: boolean;
  /** The URL (tcp://IP:port) of a foreign domain's nsmgr-proxy, or undefined when it has none; never rejects. */
  proxyOf?: (ctx: Ctx, domain: string) => Promise<string | undefined>;
}

function refuseForeign(kind: string, name: string, domain: string, own: string | undefined, why?: string): AgentError {
  const mine = own ? `this registry's domain is ${own}` : 'this agent names no domain';
  return new AgentError(
    'FOREIGN_DOMAIN',
    `${kind} ${name} names domain ${domain}, which does not own it (${mine}); ${why ?? "only this agent's own endpoints register into another domain's registry"}`,
  );
}

/** `ctx` for a call into another registry: that registry's chain ends there, not in this one. */
function outside(ctx: Ctx): Ctx {
  return ctx.with(NS_REGISTRY.key, tailNsRegistry).with(NSE_REGISTRY.key, tailNseRegistry);
}

/** Runs a registry call in a foreign domain's registry, its errors naming the domain. */
async function foreignCall<T>(ctx: Ctx, opts: ProxyDnsOptions, domain: string, what: string, call: (reg: DomainRegistry, ctx: Ctx) => Promise<T>): Promise<T> {
  const reg = await opts.registryOf(ctx, domain);
  try {
    return await call(reg, outside(ctx));
  } catch (err) {
    throw AgentError.at(AgentError.wrap(err, `${what} in the registry of domain ${domain}`, 'UNAVAILABLE'), COMPONENT.registry(reg.url));
  }
}

function stripOwn(name: string | undefined, own: string | undefined): string | undefined {
  return name !== undefined && own !== undefined ? stripDomain(name, own) : name;
}

/** `list` with `@domain` added to each name; names already carrying a domain stay as they are. */
function addDomain(names: string[] | undefined, domain: string): string[] | undefined {
  return names?.map((n) => (domainOf(n) === undefined ? withDomain(n, domain) : n));
}

function restoreNse(nse: NetworkServiceEndpoint, domain: string): NetworkServiceEndpoint {
  const labels = nse.network_service_labels
    ? Object.fromEntries(Object.entries(nse.network_service_labels).map(([svc, l]) => [withDomain(svc, domain), l]))
    : undefined;
  return {
    ...nse,
    name: withDomain(nse.name ?? '', domain),
    network_service_names: addDomain(nse.network_service_names, domain) ?? [],
    ...(labels ? { network_service_labels: labels } : {}),
  };
}

/** Runs a find in a foreign registry under the timeout, its errors naming the domain. */
async function* foreignFind<T>(
  ctx: Ctx,
  opts: ProxyDnsOptions,
  domain: string,
  watch: boolean,
  find: (reg: DomainRegistry, ctx: Ctx) => AsyncIterable<T>,
): AsyncIterable<T> {
  const reg = await opts.registryOf(ctx, domain);
  // A watch lasts as long as its caller's ctx; a one-shot find gets the timeout.
  const [sub, cancel] = watch ? [ctx, () => {}] : ctx.withTimeout(opts.timeoutMs);
  try {
    for await (const r of find(reg, outside(sub))) yield r;
    if (!watch && sub.signal.aborted && !ctx.signal.aborted) {
      throw new AgentError('UNAVAILABLE', `the registry of domain ${domain} at ${reg.url} gave no answer within ${opts.timeoutMs} ms`, {
        component: COMPONENT.registry(reg.url),
      });
    }
  } catch (err) {
    throw AgentError.at(AgentError.wrap(err, `find in the registry of domain ${domain}`, 'UNAVAILABLE'), COMPONENT.registry(reg.url));
  } finally {
    cancel();
  }
}

export function proxyDnsNsRegistry(opts: ProxyDnsOptions): NsRegistry {
  const own = opts.ownDomain;
  /** The domain whose registry a registration goes to when it is another's (floating). */
  const floatingDomain = (ns: NetworkService): string | undefined => {
    const domain = domainOf(ns.name);
    if (!isOtherDomain(domain, own)) return undefined;
    if (!opts.floating) throw refuseForeign('network service', ns.name ?? '', domain, own);
    return domain;
  };
  const checked = (ns: NetworkService): NetworkService => ({ ...ns, name: stripOwn(ns.name, own) ?? '' });
  return {
    async register(ctx, ns) {
      const domain = floatingDomain(ns);
      const local = splitDomain(ns.name ?? '').local;
      const stored = domain
        ? await foreignCall(ctx, opts, domain, `register network service ${local}`, (reg, c) => reg.ns.register(c, { ...ns, name: local }))
        : await nextNsRegistry(ctx).register(ctx, checked(ns));
      return { ...stored, name: ns.name ?? '' };
    },
    async unregister(ctx, ns) {
      const domain = floatingDomain(ns);
      if (!domain) return nextNsRegistry(ctx).unregister(ctx, checked(ns));
      const sent = { ...ns, name: splitDomain(ns.name!).local };
      await foreignCall(ctx, opts, domain, `unregister network service ${sent.name}`, (reg, c) => reg.ns.unregister(c, sent));
    },
    find(ctx, query) {
      const name = query.network_service?.name;
      const domain = domainOf(name);
      if (!isOtherDomain(domain, own)) {
        if (domain === undefined) return nextNsRegistry(ctx).find(ctx, query);
        const stripped = { ...query, network_service: { ...query.network_service, name: stripOwn(name, own) ?? '' } };
        return restoredNs(nextNsRegistry(ctx).find(ctx, stripped), domain);
      }
      const local = splitDomain(name!).local;
      const q = { ...query, network_service: { ...query.network_service, name: local } };
      return restoredNs(
        foreignFind(ctx, opts, domain, !!query.watch, (reg, sub) => reg.ns.find(sub, q)),
        domain,
        ctx,
      );
    },
  };
}

async function* restoredNs<T extends { network_service?: NetworkService | null }>(it: AsyncIterable<T>, domain: string, ctx?: Ctx): AsyncIterable<T> {
  for await (const r of it) {
    const ns = r.network_service;
    if (ns && domainOf(ns.name) !== undefined) {
      ctx?.log.warn('proxydns: dropped a network service naming a third domain', { domain, name: ns.name });
      continue;
    }
    yield ns ? { ...r, network_service: { ...ns, name: withDomain(ns.name ?? '', domain) } } : r;
  }
}

async function* restoredNse<T extends { network_service_endpoint?: NetworkServiceEndpoint | null }>(
  it: AsyncIterable<T>,
  domain: string,
  ctx?: Ctx,
): AsyncIterable<T> {
  for await (const r of it) {
    const nse = r.network_service_endpoint;
    if (nse && domainOf(nse.name) !== undefined) {
      ctx?.log.warn('proxydns: dropped an endpoint naming a third domain', { domain, name: nse.name });
      continue;
    }
    yield nse ? { ...r, network_service_endpoint: restoreNse(nse, domain) } : r;
  }
}

/** Each endpoint with `url` replaced by the domain's nsmgr-proxy URL, when it has one. */
async function* throughProxy<T extends { network_service_endpoint?: NetworkServiceEndpoint | null }>(it: AsyncIterable<T>, proxy: Promise<string | undefined>): AsyncIterable<T> {
  for await (const r of it) {
    const url = await proxy;
    const nse = r.network_service_endpoint;
    yield url && nse ? { ...r, network_service_endpoint: { ...nse, url } } : r;
  }
}

/** The domain an NSE query or registration is about: its name's, else its first service's. */
function nseDomain(name: string | undefined, services: string[] | undefined): string | undefined {
  return domainOf(name) ?? (services ?? []).map((s) => domainOf(s)).find((d) => d !== undefined);
}

export function proxyDnsNseRegistry(opts: ProxyDnsOptions): NseRegistry {
  const own = opts.ownDomain;
  /**
   * The other domain an NSE registers into (floating), or undefined for this domain's registry.
   * Floating needs the name and every service name to carry that one domain.
   */
  const floatingDomain = (nse: NetworkServiceEndpoint): string | undefined => {
    const name = nse.name ?? '';
    const nameDomain = domainOf(name);
    const foreign = isOtherDomain(nameDomain, own) ? nameDomain : undefined;
    for (const n of [name, ...(nse.network_service_names ?? [])]) {
      const domain = domainOf(n);
      if (!isOtherDomain(domain, own)) {
        if (foreign !== undefined) throw refuseForeign('network service endpoint', name, foreign, own, `its service ${n} is not of that domain (a floating endpoint names one domain everywhere)`);
        continue;
      }
      if (!opts.floating) throw refuseForeign('network service endpoint', name, domain, own);
      if (foreign === undefined || !sameDomain(domain, foreign)) {
        throw refuseForeign('network service endpoint', name, domain, own, 'a floating endpoint carries the same domain in its name and every service name');
      }
    }
    return foreign;
  };
  /** `nse` with `domain` stripped from its names (and its labels' keys). */
  const withoutDomain = (nse: NetworkServiceEndpoint, domain: string): NetworkServiceEndpoint => {
    const labels = nse.network_service_labels
      ? Object.fromEntries(Object.entries(nse.network_service_labels).map(([svc, l]) => [stripDomain(svc, domain), l]))
      : undefined;
    return {
      ...nse,
      name: stripDomain(nse.name ?? '', domain),
      network_service_names: (nse.network_service_names ?? []).map((s) => stripDomain(s, domain)),
      ...(labels ? { network_service_labels: labels } : {}),
    };
  };
  /** `stored` with the names `nse` was registered with. */
  const restored = (stored: NetworkServiceEndpoint, nse: NetworkServiceEndpoint): NetworkServiceEndpoint => ({
    ...stored,
    name: nse.name ?? '',
    network_service_names: nse.network_service_names ?? [],
    ...(nse.network_service_labels ? { network_service_labels: nse.network_service_labels } : {}),
  });
  return {
    async register(ctx, nse) {
      const domain = floatingDomain(nse) ?? own;
      if (domain === undefined) return nextNseRegistry(ctx).register(ctx, nse);
      const sent = withoutDomain(nse, domain);
      const stored = sameDomain(domain, own)
        ? await nextNseRegistry(ctx).register(ctx, sent)
        : await foreignCall(ctx, opts, domain, `register network service endpoint ${sent.name}`, (reg, c) => reg.nse.register(c, sent));
      return restored(stored, nse);
    },
    async unregister(ctx, nse) {
      const domain = floatingDomain(nse) ?? own;
      if (domain === undefined) return nextNseRegistry(ctx).unregister(ctx, nse);
      const sent = withoutDomain(nse, domain);
      if (sameDomain(domain, own)) return nextNseRegistry(ctx).unregister(ctx, sent);
      await foreignCall(ctx, opts, domain, `unregister network service endpoint ${sent.name}`, (reg, c) => reg.nse.unregister(c, sent));
    },
    find(ctx, query) {
      const q = query.network_service_endpoint ?? {};
      const domain = nseDomain(q.name ?? undefined, q.network_service_names ?? undefined);
      if (domain === undefined) return nextNseRegistry(ctx).find(ctx, query);
      const strip = (n: string) => stripDomain(n, domain);
      const stripped = {
        ...query,
        network_service_endpoint: {
          ...q,
          ...(q.name ? { name: strip(q.name) } : {}),
          ...(q.network_service_names ? { network_service_names: q.network_service_names.map(strip) } : {}),
        },
      };
      if (!isOtherDomain(domain, own)) return restoredNse(nextNseRegistry(ctx).find(ctx, stripped), domain);
      const proxy = opts.proxyOf ? opts.proxyOf(ctx, domain).catch(() => undefined) : Promise.resolve(undefined);
      return throughProxy(
        restoredNse(
          foreignFind(ctx, opts, domain, !!query.watch, (reg, sub) => reg.nse.find(sub, stripped)),
          domain,
          ctx,
        ),
        proxy,
      );
    },
  };
}
