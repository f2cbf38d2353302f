/**
 * interdomainbypass (server), the remote side of upstream NSM's interdomainbypass: a Request
 * from another domain names `svc@<domain>` and `nse@<domain>`; towards this domain's
 * endpoints the suffix is stripped, and it is restored in the answer (Close is stripped too),
 * so the caller sees the names it sent. The suffix is this domain's when it is the agent's
 * `domain`, or when the endpoint named is one this agent hosts (the caller found it in this
 * domain's registry under any name of the domain, e.g. its `IP:port`).
 *
 * An endpoint this agent hosts under a name of another domain (floating: registered into that
 * domain's registry) is known by its whole name: nothing is stripped.
 *
 * Refused with FOREIGN_DOMAIN: a service and an endpoint name of different domains (an
 * endpoint name spoofing another domain's suffix). Names of other domains go on unchanged
 * (discover asks their registry, through proxydns).
 *
 * Placement: before begin, so that everything after it (refresh, monitor, discover, the
 * endpoint) knows the connection by this domain's own names.
 */
import type { Connection } from '../../api';
import { domainOf, sameDomain, splitDomain, withDomain } from '../../core/domain';
import { AgentError } from '../../core/errors';
import { NetworkServiceServer, nextServer } from '../../core/networkservice';

function checkSameDomain(conn: Connection): void {
  const svc = domainOf(conn.network_service ?? undefined);
  const nse = domainOf(conn.network_service_endpoint_name ?? undefined);
  if (conn.network_service_endpoint_name && (svc !== undefined || nse !== undefined) && !sameDomain(svc, nse)) {
    throw new AgentError(
      'FOREIGN_DOMAIN',
      `network service ${conn.network_service} and endpoint ${conn.network_service_endpoint_name} name different domains (${svc ?? 'none'}, ${nse ?? 'none'})`,
    );
  }
}

/** The connection with `@domain` stripped from its names, when they are of `domain`. */
function strip(conn: Connection, domain: string): Connection {
  const svc = splitDomain(conn.network_service ?? '');
  const nse = splitDomain(conn.network_service_endpoint_name ?? '');
  return {
    ...conn,
    ...(sameDomain(svc.domain, domain) ? { network_service: svc.local } : {}),
    ...(sameDomain(nse.domain, domain) ? { network_service_endpoint_name: nse.local } : {}),
  };
}

/** `conn` with the names the caller sent. */
function restore(conn: Connection, sent: Connection): Connection {
  const out = { ...conn };
  const svcDomain = domainOf(sent.network_service ?? undefined);
  if (svcDomain !== undefined && conn.network_service && domainOf(conn.network_service) === undefined) {
    out.network_service = withDomain(conn.network_service, svcDomain);
  }
  const nseDomain = domainOf(sent.network_service_endpoint_name ?? undefined) ?? svcDomain;
  if (nseDomain !== undefined && conn.network_service_endpoint_name && domainOf(conn.network_service_endpoint_name) === undefined) {
    out.network_service_endpoint_name = withDomain(conn.network_service_endpoint_name, nseDomain);
  }
  return out;
}

export interface InterdomainBypassOptions {
  /** This agent's domain (agent.yaml `domain`), if it names one. */
  ownDomain?: string | undefined;
  /** True for the name of an endpoint this agent hosts. */
  hosts?: (endpoint: string) => boolean;
}

/** The domain of `conn`'s names that is this one's, if any. */
function ownDomainOf(conn: Connection, opts: InterdomainBypassOptions): string | undefined {
  // An endpoint hosted here under a name of another domain (floating) keeps its names whole,
  // as upstream's home proxy forwards them to the endpoint it registered.
  if (conn.network_service_endpoint_name && opts.hosts?.(conn.network_service_endpoint_name)) return undefined;
  const svc = domainOf(conn.network_service ?? undefined);
  const nse = splitDomain(conn.network_service_endpoint_name ?? '');
  if (sameDomain(svc, opts.ownDomain) || sameDomain(nse.domain, opts.ownDomain)) return opts.ownDomain;
  if (nse.domain !== undefined && opts.hosts?.(nse.local)) return nse.domain;
  return undefined;
}

export function interdomainBypassServer(opts: InterdomainBypassOptions = {}): NetworkServiceServer {
  return {
    async request(ctx, req) {
      const conn = req.connection ?? {};
      checkSameDomain(conn);
      const domain = ownDomainOf(conn, opts);
      if (domain === undefined) return nextServer(ctx).request(ctx, req);
      const answer = await nextServer(ctx).request(ctx, { ...req, connection: strip(conn, domain) });
      return restore(answer, conn);
    },
    async close(ctx, conn) {
      const domain = ownDomainOf(conn, opts);
      if (domain === undefined) return nextServer(ctx).close(ctx, conn);
      return nextServer(ctx).close(ctx, strip(conn, domain));
    },
  };
}
