/**
 * The registries of other domains, as this agent reaches them: found by DNS (dnsresolve), each
 * dialed once per address over mTLS with the agent's identity and tokens, and kept while the
 * agent runs. Repeated finds are answered from memory kept current by watches (querycache), as
 * for this domain's own remote registry.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Clock } from '../core/clock';
import type { Ctx } from '../core/ctx';
import type { Logger } from '../core/log';
import type { TokenSource } from '../core/token';
import { grpcNseRegistry, grpcNsRegistry, newRegistryClients } from '../registry/client';
import type { DomainRegistry } from '../registry/common/proxydns';
import { DomainResolver } from '../registry/dnsresolve';
import { nseQueryCache, nsQueryCache } from '../registry/querycache';
import { channelCredentials, type X509Source } from '../spire';
import type { AgentConfig } from './config';

export interface DomainRegistriesOptions {
  clock: Clock;
  log: Logger;
  identity: X509Source;
  tokens: TokenSource;
}

export class DomainRegistries {
  private readonly resolver: DomainResolver;
  private readonly dialed = new Map<string, DomainRegistry & { close(): void }>();
  private creds: grpc.ChannelCredentials | undefined;
  private readonly proxiesSeen = new Set<string>();

  constructor(
    readonly cfg: AgentConfig['interdomain'],
    private readonly opts: DomainRegistriesOptions,
  ) {
    this.resolver = new DomainResolver({ clock: opts.clock, servers: cfg.dnsServers, timeoutMs: cfg.timeoutMs });
  }

  /** The registry of `domain`: resolved (cached for its TTL) and dialed (once per address). */
  async registryOf(ctx: Ctx, domain: string): Promise<DomainRegistry> {
    const found = await this.resolver.resolve(domain);
    const known = this.dialed.get(found.address);
    if (known) return known;
    ctx.log.info('interdomain: registry found', { domain, address: found.address, via: found.via });
    this.creds ??= channelCredentials(this.opts.identity, { tokens: this.opts.tokens }).credentials;
    const clients = newRegistryClients(found.address, this.creds);
    const cache = { clock: this.opts.clock, log: this.opts.log };
    const ns = nsQueryCache(grpcNsRegistry(clients.ns), cache);
    const nse = nseQueryCache(grpcNseRegistry(clients.nse), cache);
    const close = () => {
      ns.close();
      nse.close();
      clients.close();
    };
    const reg = { ns, nse, url: `tcp://${found.address}`, close };
    this.dialed.set(found.address, reg);
    return reg;
  }

  /** The URL of `domain`'s nsmgr-proxy when DNS publishes one (SRV + A nsmgr-proxy.nsm-system.<domain>). */
  async proxyOf(ctx: Ctx, domain: string): Promise<string | undefined> {
    const found = await this.resolver.resolveProxy(domain);
    if (!found) return undefined;
    const url = `tcp://${found.address}`;
    if (!this.proxiesSeen.has(url)) {
      this.proxiesSeen.add(url);
      ctx.log.info('interdomain: endpoints of the domain are reached through its nsmgr-proxy', { domain, url, via: found.via });
    }
    return url;
  }

  close(): void {
    for (const r of this.dialed.values()) r.close();
    this.dialed.clear();
  }
}
