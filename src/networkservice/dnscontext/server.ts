/**
 * dnscontext server (NSM connectioncontext/dnscontext): an endpoint tells each client which DNS
 * servers answer for which search domains, in `context.dns_context.configs`. Each of its configs
 * is added to the request's context unless an equal one is there already (same servers and
 * search domains, in any order), so a refresh carrying the configs back does not repeat them.
 *
 * Placement: in an endpoint's chain, before the elements that fill the rest of the context.
 */
import type { DNSConfig } from '../../api';
import { NetworkServiceServer, nextServer } from '../../core/networkservice';

function sameSet(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  const x = new Set(a ?? []);
  const y = new Set(b ?? []);
  return x.size === y.size && [...x].every((v) => y.has(v));
}

/** True if both configs name the same servers and the same search domains. */
export function sameDnsConfig(a: DNSConfig, b: DNSConfig): boolean {
  return sameSet(a.dns_server_ips, b.dns_server_ips) && sameSet(a.search_domains, b.search_domains);
}

export function dnsContextServer(configs: readonly DNSConfig[]): NetworkServiceServer {
  return {
    request(ctx, req) {
      if (configs.length === 0) return nextServer(ctx).request(ctx, req);
      const conn = req.connection ?? {};
      const have = [...(conn.context?.dns_context?.configs ?? [])];
      for (const c of configs) if (!have.some((h) => sameDnsConfig(h, c))) have.push({ dns_server_ips: [...(c.dns_server_ips ?? [])], search_domains: [...(c.search_domains ?? [])] });
      const context = { ...(conn.context ?? {}), dns_context: { configs: have } };
      return nextServer(ctx).request(ctx, { ...req, connection: { ...conn, context } });
    },
    close: (ctx, conn) => nextServer(ctx).close(ctx, conn),
  };
}
