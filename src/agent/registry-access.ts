/**
 * The registry as the agent uses it: embedded (served from memory or etcd by this agent) or
 * a remote one reached over gRPC, whose finds are answered from memory kept current by
 * watches (src/registry/querycache.ts).
 */
import { grpcJs } from '../api/grpc-js';
import type { Clock } from '../core/clock';
import type { Logger } from '../core/log';
import type { NsRegistry, NseRegistry } from '../core/registry';
import { chainNseRegistry, chainNsRegistry } from '../core/registry';
import { proxyDnsNseRegistry, proxyDnsNsRegistry } from '../registry/common/proxydns';
import { nseQueryCache, nsQueryCache } from '../registry/querycache';
import { newRegistryServer, RegistryServer } from '../registry/server';
import { EtcdStore } from '../registry/store/etcd';
import { grpcNseRegistry, grpcNsRegistry, newRegistryClients } from '../registry/client';
import type { TokenSource } from '../core/token';
import { channelCredentials, type X509Source } from '../spire';
import type { AgentConfig } from './config';
import { DomainRegistries } from './domains';
import { healthWatched, RegistryHealth } from './registry-health';

export interface RegistryAccess {
  ns: NsRegistry;
  nse: NseRegistry;
  /** The embedded registry's server, when embedded. */
  embedded?: RegistryServer;
  /** A remote registry's reachability, as the agent's calls find it. */
  health?: RegistryHealth;
  /**
   * What this agent's own endpoints register through: ns and nse, and besides, a name of
   * another domain registers into that domain's registry (floating). Absent: ns and nse.
   */
  hosted?: { ns: NsRegistry; nse: NseRegistry };
  close(): void;
}

export interface RegistryAccessOptions {
  clock: Clock;
  log: Logger;
  /** mTLS and tokens towards a tcp:// registry. */
  identity: X509Source;
  tokens: TokenSource;
  /** This agent's SPIFFE ID: an embedded registry's authorization knows this agent's own calls by it. */
  selfId: () => string | undefined;
}

export function openRegistry(registry: AgentConfig['registry'], opts: RegistryAccessOptions): RegistryAccess {
  if (registry.url === 'embedded') {
    const store = registry.store === 'etcd' ? new EtcdStore({ endpoints: registry.etcd }) : undefined;
    const embedded = newRegistryServer({
      clock: opts.clock,
      log: opts.log,
      defaultExpiration: registry.expirationMs,
      store,
      authorize: { self: opts.selfId },
    });
    return {
      ns: embedded.ns,
      nse: embedded.nse,
      embedded,
      close: () => {
        embedded.close();
        if (embedded.store instanceof EtcdStore) embedded.store.close();
      },
    };
  }
  const u = new URL(registry.url);
  const target = u.protocol === 'unix:' ? `unix://${u.pathname}` : u.host;
  const creds = u.protocol === 'tcp:' ? channelCredentials(opts.identity, { tokens: opts.tokens }).credentials : grpcJs.credentials.createInsecure();
  const clients = newRegistryClients(target, creds);
  const cache = { clock: opts.clock, log: opts.log };
  const health = new RegistryHealth(registry.url, opts.clock);
  const ns = nsQueryCache(healthWatched(grpcNsRegistry(clients.ns), health), cache);
  const nse = nseQueryCache(healthWatched(grpcNseRegistry(clients.nse), health), cache);
  return {
    ns,
    nse,
    health,
    close: () => {
      ns.close();
      nse.close();
      clients.close();
    },
  };
}

/**
 * `access` with names of the form `name@domain` served by that domain's registry (proxydns):
 * what the agent's discover and its registry listeners use; its hosted endpoints use `hosted`,
 * which also registers a name of another domain into that domain's registry (floating).
 */
export function withOtherDomains(access: RegistryAccess, cfg: Pick<AgentConfig, 'domain' | 'interdomain'>, opts: RegistryAccessOptions): RegistryAccess {
  const domains = new DomainRegistries(cfg.interdomain, opts);
  const proxy = { ownDomain: cfg.domain, registryOf: domains.registryOf.bind(domains), proxyOf: domains.proxyOf.bind(domains), timeoutMs: cfg.interdomain.timeoutMs };
  const floating = { ...proxy, floating: true };
  return {
    ...access,
    ns: chainNsRegistry(proxyDnsNsRegistry(proxy), access.ns),
    nse: chainNseRegistry(proxyDnsNseRegistry(proxy), access.nse),
    hosted: { ns: chainNsRegistry(proxyDnsNsRegistry(floating), access.ns), nse: chainNseRegistry(proxyDnsNseRegistry(floating), access.nse) },
    close: () => {
      domains.close();
      access.close();
    },
  };
}

/** How `status` names the registry. */
export function registryLabel(registry: AgentConfig['registry']): string {
  return registry.url === 'embedded' ? `embedded (${registry.store})` : registry.url;
}
