/**
 * An endpoint's DNS settings (`endpoints[].dns`, a unit's DNS= and DNSSearch=): the servers and
 * search domains it hands to each client as one DNSConfig of `dns_context`.
 */
import { isIP } from 'node:net';

export interface DnsSettings {
  /** IPv4 or IPv6 addresses (port 53). */
  servers: string[];
  searchDomains: string[];
}

/** A DNS name: dot-separated labels of letters, digits, '-' and '_', 253 characters at most. */
const DOMAIN = /^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/** True for a DNS name this agent accepts as a search domain (also from other hosts' endpoints). */
export const isDomainName = (s: unknown): s is string => typeof s === 'string' && DOMAIN.test(s);

/** What is wrong with one entry: the key under the entry (e.g. `servers[1]`) and why; undefined if fine. */
export function dnsSettingsProblem(d: { servers?: unknown; searchDomains?: unknown }): { key: string; reason: string } | undefined {
  const servers = Array.isArray(d.servers) ? d.servers : [];
  if (servers.length === 0) return { key: 'servers', reason: 'must list at least one DNS server address' };
  for (const [i, s] of servers.entries()) {
    if (typeof s !== 'string' || isIP(s) === 0) return { key: `servers[${i}]`, reason: `${JSON.stringify(s)} is not an IPv4 or IPv6 address` };
  }
  const domains = Array.isArray(d.searchDomains) ? d.searchDomains : [];
  for (const [i, s] of domains.entries()) {
    if (typeof s !== 'string' || !DOMAIN.test(s)) return { key: `searchDomains[${i}]`, reason: `${JSON.stringify(s)} is not a domain name` };
  }
  return undefined;
}

/** The DNSConfig an endpoint sends (upstream field names); the domains without a trailing dot. */
export function toDnsConfig(d: DnsSettings): { dns_server_ips: string[]; search_domains: string[] } {
  return { dns_server_ips: [...d.servers], search_domains: d.searchDomains.map((s) => s.replace(/\.$/, '')) };
}
