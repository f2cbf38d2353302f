/**
 * The relay of a site's nsmgr-proxy (upstream's nsmgr-proxy at the remote side of an
 * interdomain Request): a Request or Close from another host for an endpoint of this domain
 * that another agent of the domain hosts goes on to that agent, at the URL the endpoint
 * registered, and the answer comes back. Control plane only: the mechanism preferences and
 * their parameters pass unchanged, so the vWire is made between the caller's host and the
 * endpoint's host directly.
 *
 * relayingServer decides, per call, between the relay chain and the agent's own server chain:
 * a caller authenticated by mTLS (another host) naming an endpoint this agent does not host is
 * relayed when the domain's registry has the endpoint at another agent's URL. An endpoint
 * registered at this agent's own URL (a race with its removal) goes to the own chain, which
 * answers as it always did. A name of another domain is refused (FOREIGN_DOMAIN): this relay
 * serves its own domain only.
 *
 * The inner agent is the one the registry names; for a connection relayed before (a refresh, a
 * Close) whose endpoint the registry does not have or cannot say, the one it went to.
 *
 * relayServer, the relay chain's last element: puts the inner agent's URL in the Ctx for the
 * client chain after it (a Close goes where the Request went), remembers it, and names the
 * relay, the endpoint and the inner URL in the errors it passes back.
 */
import type { Connection, NetworkServiceEndpoint } from '../../api';
import { fromTimestamp } from '../../api/time';
import { Ctx, Key } from '../../core/ctx';
import { sameDomain, splitDomain } from '../../core/domain';
import { AgentError } from '../../core/errors';
import type { NetworkServiceClient, NetworkServiceServer } from '../../core/networkservice';
import { findAll, type NseRegistry } from '../../core/registry';
import { PEER } from '../../spire/peer';
import { withClientURL } from '../clienturl';
import type { RelayTable } from './table';

/** The inner agent's URL the dispatcher found, for relayServer. */
const INNER_URL = new Key<string>('relay.inner-url');

export interface RelayIdentity {
  /** This agent's name, as errors name the relay. */
  name: string;
  /** This site's domain. */
  domain: string;
}

/** `nsmgr-proxy host-b of domain-b.test`: how errors name the relay. */
function relayName(r: RelayIdentity): string {
  return `nsmgr-proxy ${r.name} of ${r.domain}`;
}

/** The registered URL of endpoint `name` (this domain's name, no suffix), or undefined. */
async function registeredUrl(ctx: Ctx, nse: NseRegistry, name: string): Promise<string | undefined> {
  const found = await findAll(nse.find(ctx, { network_service_endpoint: { name }, watch: false }));
  const entry = found.map((r) => r.network_service_endpoint).find((e): e is NetworkServiceEndpoint => !!e && e.name === name);
  return entry?.url || undefined;
}

export interface RelayingServerOptions extends RelayIdentity {
  /** True for an endpoint this agent hosts, by its whole name or its name in this domain. */
  hosts: (endpoint: string) => boolean;
  /** This domain's registry. */
  nse: NseRegistry;
  /** This agent's own URL (the one its endpoints register). */
  selfUrl: () => string | undefined;
  /** Remembered inner URLs, for a Close after the endpoint left the registry. */
  table: RelayTable;
  relay: NetworkServiceServer;
  own: NetworkServiceServer;
}

export function relayingServer(o: RelayingServerOptions): NetworkServiceServer {
  /** The inner URL when `conn` is to be relayed; undefined: the own chain serves it. */
  const route = async (ctx: Ctx, conn: Connection): Promise<string | undefined> => {
    const endpoint = conn.network_service_endpoint_name ?? '';
    if (!ctx.get(PEER) || !endpoint || o.hosts(endpoint)) return undefined;
    const { local, domain } = splitDomain(endpoint);
    if (domain !== undefined && !sameDomain(domain, o.domain)) {
      throw new AgentError(
        'FOREIGN_DOMAIN',
        `${relayName(o)}: endpoint ${endpoint} is of domain ${domain}: this agent relays Requests to the endpoints of ${o.domain} only`,
      );
    }
    if (o.hosts(local)) return undefined;
    let url: string | undefined;
    let failed: AgentError | undefined;
    try {
      url = await registeredUrl(ctx, o.nse, local);
    } catch (err) {
      failed = AgentError.wrap(err, `${relayName(o)}: finding endpoint ${local} in the registry of ${o.domain}`, 'UNAVAILABLE');
    }
    // A connection relayed before (a refresh, a Close) goes on to the same agent while the
    // registry cannot say: the endpoint's agent answers for its endpoint itself.
    url ??= connectionUrl(o.table, conn);
    if (!url) {
      throw failed ?? new AgentError('NOT_FOUND', `${relayName(o)}: endpoint ${local} is not found in the registry of ${o.domain}`);
    }
    return url === o.selfUrl() ? undefined : url;
  };
  return {
    async request(ctx, req) {
      const url = await route(ctx, req.connection ?? {});
      if (url === undefined) return o.own.request(ctx, req);
      const rctx = ctx.with(INNER_URL, url);
      return o.relay.request(rctx, req);
    },
    async close(ctx, conn) {
      const url = await route(ctx, conn);
      if (url === undefined) return o.own.close(ctx, conn);
      const rctx = ctx.with(INNER_URL, url);
      return o.relay.close(rctx, conn);
    },
  };
}

/** The URL a relayed connection went to, by any of the relay's segments in its path. */
function connectionUrl(table: RelayTable, conn: Connection): string | undefined {
  for (const seg of conn.path?.path_segments ?? []) {
    const url = table.urlOf(seg.id ?? '');
    if (url) return url;
  }
  return undefined;
}

export interface RelayServerOptions extends RelayIdentity {
  table: RelayTable;
  /** The client chain to the inner agent (it dials the URL in the Ctx). */
  client: NetworkServiceClient;
}

export function relayServer(o: RelayServerOptions): NetworkServiceServer {
  const fail = (err: unknown, endpoint: string | null | undefined, url: string): AgentError =>
    AgentError.wrap(err, `${relayName(o)}: relaying to endpoint ${endpoint ?? ''} at ${url}`, 'UNAVAILABLE');
  return {
    async request(ctx, req) {
      const conn = req.connection ?? {};
      const id = conn.id ?? '';
      const url = ctx.get(INNER_URL) ?? o.table.urlOf(id);
      if (!url) throw new AgentError('INTERNAL', `${relayName(o)}: no inner URL for connection ${id}`);
      let answer: Connection;
      try {
        answer = await o.client.request(withClientURL(ctx, url), req);
      } catch (err) {
        throw fail(err, conn.network_service_endpoint_name, url);
      }
      // Kept until the caller's token expires: a caller that stops refreshing is forgotten.
      const index = conn.path?.index ?? 0;
      const callerExpires = index > 0 ? fromTimestamp(conn.path?.path_segments?.[index - 1]?.expires) : undefined;
      o.table.remember(id, url, callerExpires, ctx.clock.now());
      ctx.log.info('relayed a Request', { id, endpoint: conn.network_service_endpoint_name, url });
      return answer;
    },
    async close(ctx, conn) {
      const id = conn.id ?? '';
      const url = o.table.urlOf(id) ?? ctx.get(INNER_URL);
      o.table.forget(id);
      if (!url) return;
      try {
        await o.client.close(withClientURL(ctx, url), conn);
      } catch (err) {
        throw fail(err, conn.network_service_endpoint_name, url);
      }
      ctx.log.info('relayed a Close', { id, endpoint: conn.network_service_endpoint_name, url });
    },
  };
}
