/**
 * Where a domain's registry is, found by DNS as upstream NSM's dnsresolve finds it, so that
 * Kubernetes domains answer as they are:
 *
 * - a domain written as `IP:port` (or `[IPv6]:port`) is that address;
 * - SRV `registry.nsm-system.<domain>`: the port from the SRV answer, the address from an
 *   A/AAAA lookup of the same name (upstream ignores the SRV target);
 * - otherwise SRV `_nsm-registry._tcp.<domain>`, its target's A/AAAA giving the address.
 *
 * Both SRV names are asked at once; the first form wins when both answer. An answer is kept for
 * the TTL of its address records (node:dns does not expose an SRV record's TTL), at least
 * MIN_TTL_MS. A failure is DOMAIN_NOT_FOUND naming every DNS name asked and what it answered,
 * within `timeoutMs`; failures are not cached.
 */
import type { promises as DnsPromises } from 'node:dns';
import { isIP } from 'node:net';
import type { Clock } from '../core/clock';
import { AgentError } from '../core/errors';

/** The lookups resolution needs: node:dns's promises Resolver has them. */
export interface DnsLookups {
  resolveSrv(name: string): Promise<{ name: string; port: number; priority: number; weight: number }[]>;
  resolve4(name: string, opts: { ttl: true }): Promise<{ address: string; ttl: number }[]>;
  resolve6(name: string, opts: { ttl: true }): Promise<{ address: string; ttl: number }[]>;
}

export interface DomainResolverOptions {
  clock: Clock;
  /** DNS servers to ask (`IP` or `IP:port`); empty or absent: the system's resolver configuration. */
  servers?: string[];
  /** The whole resolution of one domain, at most. */
  timeoutMs: number;
  /** Lookups other than node:dns's (tests). */
  lookups?: DnsLookups;
}

/** The upstream name of a domain's registry service (its SRV and A/AAAA name). */
export const REGISTRY_SERVICE = 'registry.nsm-system';
/** The upstream name of a domain's nsmgr-proxy (its SRV and A/AAAA name). */
export const NSMGR_PROXY_SERVICE = 'nsmgr-proxy.nsm-system';
/** How long a domain without an nsmgr-proxy record is not asked again. */
const NO_PROXY_TTL_MS = 30_000;
/** The SRV name whose target is the registry's host. */
export const REGISTRY_SRV = '_nsm-registry._tcp';
const MIN_TTL_MS = 1000;

export interface ResolvedRegistry {
  /** `host:port` to dial (IPv6 in brackets). */
  address: string;
  /** How it was found, for logs: the DNS name that answered, or `literal`. */
  via: string;
}

class Unanswered extends Error {}

function hostPort(ip: string, port: number): string {
  return isIP(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** `IP:port` or `[IPv6]:port` as written in a domain; undefined when the domain is a name. */
export function literalAddress(domain: string): string | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(domain);
  if (!m) return undefined;
  const ip = m[1] ?? m[2]!;
  const port = Number(m[3]);
  if (!isIP(ip) || port < 1 || port > 65535) return undefined;
  return hostPort(ip, port);
}

function dnsReason(err: unknown): string {
  if (err instanceof Unanswered) return err.message;
  const code = (err as { code?: string }).code;
  if (code === 'ENOTFOUND') return 'NXDOMAIN';
  if (code === 'ENODATA') return 'no record';
  if (code === 'ETIMEOUT') return 'no answer in time';
  if (code === 'ECONNREFUSED') return 'DNS server refused';
  return code ?? (err instanceof Error ? err.message : String(err));
}

export class DomainResolver {
  private readonly lookups: DnsLookups;
  private readonly cache = new Map<string, { value: ResolvedRegistry; until: number }>();
  private readonly proxies = new Map<string, { value: ResolvedRegistry | undefined; until: number }>();
  private readonly servers: string[];

  constructor(private readonly opts: DomainResolverOptions) {
    this.servers = opts.servers ?? [];
    if (opts.lookups) {
      this.lookups = opts.lookups;
    } else {
      // Per-query timeout below the overall one: a lost UDP answer is asked again in time.
      const r = new (require('node:dns') as { promises: typeof DnsPromises }).promises.Resolver({ timeout: Math.max(200, Math.floor(opts.timeoutMs / 3)), tries: 2 });
      if (this.servers.length) r.setServers(this.servers);
      this.lookups = r;
    }
  }

  /** The registry of `domain`: from the cache while its TTL lasts, else from DNS. */
  async resolve(domain: string): Promise<ResolvedRegistry> {
    const literal = literalAddress(domain);
    if (literal) return { address: literal, via: 'literal' };
    const key = domain.toLowerCase();
    const now = this.opts.clock.now();
    const hit = this.cache.get(key);
    if (hit && hit.until > now) return hit.value;
    const { value, ttlMs } = await this.lookup(key);
    this.cache.set(key, { value, until: this.opts.clock.now() + Math.max(ttlMs, MIN_TTL_MS) });
    return value;
  }

  /**
   * The nsmgr-proxy of `domain`, as upstream's registry-proxy-dns finds it: SRV
   * `nsmgr-proxy.nsm-system.<domain>` for the port, A/AAAA on the same name for the address.
   * Undefined when DNS has none (or for a domain written as `IP:port`); a domain without one is
   * not asked again for NO_PROXY_TTL_MS, one with one for the TTL of its address record.
   */
  async resolveProxy(domain: string): Promise<ResolvedRegistry | undefined> {
    if (literalAddress(domain)) return undefined;
    const key = domain.toLowerCase();
    const hit = this.proxies.get(key);
    if (hit && hit.until > this.opts.clock.now()) return hit.value;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Unanswered(`no answer within ${this.opts.timeoutMs} ms`)), this.opts.timeoutMs);
    });
    let value: ResolvedRegistry | undefined;
    let ttlMs = NO_PROXY_TTL_MS;
    try {
      const found = await Promise.race([this.upstreamForm(`${NSMGR_PROXY_SERVICE}.${key}`), timeout]);
      value = found.value;
      ttlMs = Math.max(found.ttlMs, MIN_TTL_MS);
    } catch {
      value = undefined;
    } finally {
      clearTimeout(timer);
    }
    this.proxies.set(key, { value, until: this.opts.clock.now() + ttlMs });
    return value;
  }

  private async lookup(domain: string): Promise<{ value: ResolvedRegistry; ttlMs: number }> {
    const upstreamName = `${REGISTRY_SERVICE}.${domain}`;
    const srvName = `${REGISTRY_SRV}.${domain}`;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Unanswered(`no answer within ${this.opts.timeoutMs} ms`)), this.opts.timeoutMs);
    });
    try {
      const [first, second] = await Promise.allSettled([
        Promise.race([this.upstreamForm(upstreamName), timeout]),
        Promise.race([this.srvTargetForm(srvName), timeout]),
      ]);
      if (first.status === 'fulfilled') return first.value;
      if (second.status === 'fulfilled') return second.value;
      const servers = this.servers.length ? this.servers.join(', ') : 'the system resolver';
      throw new AgentError(
        'DOMAIN_NOT_FOUND',
        `no registry found for domain ${domain}: SRV ${upstreamName}: ${dnsReason(first.reason)}; SRV ${srvName}: ${dnsReason(second.reason)} (asked ${servers})`,
      );
    } finally {
      clearTimeout(timer);
    }
  }

  /** SRV on `name` for the port, A/AAAA on the same name for the address. */
  private async upstreamForm(name: string): Promise<{ value: ResolvedRegistry; ttlMs: number }> {
    const srv = await this.lookups.resolveSrv(name);
    const port = srv[0]?.port;
    if (!port) throw new Unanswered('no SRV record');
    const ip = await this.address(name).catch((err: unknown) => {
      throw new Unanswered(`SRV gives port ${port} but A/AAAA ${name}: ${dnsReason(err)}`);
    });
    return { value: { address: hostPort(ip.address, port), via: name }, ttlMs: ip.ttl * 1000 };
  }

  /** SRV on `name`; its (best) target's A/AAAA for the address. */
  private async srvTargetForm(name: string): Promise<{ value: ResolvedRegistry; ttlMs: number }> {
    const srv = [...(await this.lookups.resolveSrv(name))].sort((a, b) => a.priority - b.priority || b.weight - a.weight);
    const best = srv[0];
    if (!best) throw new Unanswered('no SRV record');
    const ip = await this.address(best.name).catch((err: unknown) => {
      throw new Unanswered(`target ${best.name} port ${best.port} but A/AAAA ${best.name}: ${dnsReason(err)}`);
    });
    return { value: { address: hostPort(ip.address, best.port), via: name }, ttlMs: ip.ttl * 1000 };
  }

  /** The first A record of `name`, else its first AAAA. */
  private async address(name: string): Promise<{ address: string; ttl: number }> {
    const [v4, v6] = await Promise.allSettled([this.lookups.resolve4(name, { ttl: true }), this.lookups.resolve6(name, { ttl: true })]);
    if (v4.status === 'fulfilled' && v4.value[0]) return v4.value[0];
    if (v6.status === 'fulfilled' && v6.value[0]) return v6.value[0];
    throw v4.status === 'rejected' ? v4.reason : new Unanswered('no address');
  }
}
