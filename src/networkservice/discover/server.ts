/**
 * discover server (NSM common/discover): finds who can serve the request, from the registry.
 *
 * Request:
 * - a client URL already in the Ctx: nothing to discover, continue;
 * - network_service_endpoint_name set (a refresh, or a caller that chose): that endpoint's URL
 *   becomes the client URL (NOT_FOUND "network service endpoint X is not found" if it is gone
 *   or expired);
 *   an endpoint of another domain's registry (floating, `nse@domain`) that this agent hosts is
 *   not looked up: its registration here gives the URL, so a Request for it does not depend on
 *   that registry (as upstream's interdomainbypass forwards by the URL it stored at Register);
 * - otherwise: find the network service (SERVICE_NOT_FOUND "network service X is not found")
 *   and, at the same time, its endpoints; copy the service's payload into the connection, drop
 *   expired endpoints (ctx.clock),
 *   keep those matchEndpoint selects with the request labels, and put them in the Ctx as
 *   candidates (NO_CANDIDATES "network service endpoint candidates not found for X" if none).
 * Close: the client URL of network_service_endpoint_name, if it can still be found; Close goes
 * on either way.
 *
 * Placement: after clientinfo (labels) and before roundrobin.
 */
import type { Connection, NetworkService, NetworkServiceEndpoint } from '../../api';
import { fromTimestamp } from '../../api/time';
import type { Ctx } from '../../core/ctx';
import { domainOf } from '../../core/domain';
import { AgentError } from '../../core/errors';
import { NetworkServiceServer, nextServer } from '../../core/networkservice';
import { findAll, NseRegistry, NsRegistry } from '../../core/registry';
import { clientURL, parseClientURL, withClientURL } from '../clienturl';
import { withCandidates } from './context';
import { matchEndpoint } from './match';

function expired(ctx: Ctx, nse: NetworkServiceEndpoint): boolean {
  const exp = fromTimestamp(nse.expiration_time);
  return exp !== undefined && exp <= ctx.clock.now();
}

async function findEndpoint(ctx: Ctx, reg: NseRegistry, name: string, live: boolean): Promise<NetworkServiceEndpoint> {
  const found = await findAll(reg.find(ctx, { network_service_endpoint: { name }, watch: false }));
  const nse = found
    .map((r) => r.network_service_endpoint)
    .find((e): e is NetworkServiceEndpoint => !!e && e.name === name && !(live && expired(ctx, e)));
  if (!nse) throw new AgentError('NOT_FOUND', `network service endpoint ${name} is not found`);
  return nse;
}

async function findService(ctx: Ctx, reg: NsRegistry, conn: Connection): Promise<NetworkService> {
  const name = conn.network_service ?? '';
  if (!name) throw new AgentError('INVALID_ARGUMENT', 'the request names no network service (connection.network_service is empty)');
  const query = conn.payload ? { name, payload: conn.payload } : { name };
  const found = await findAll(reg.find(ctx, { network_service: query, watch: false }));
  const ns = found.map((r) => r.network_service).find((s): s is NetworkService => !!s && s.name === name);
  if (!ns) throw new AgentError('SERVICE_NOT_FOUND', `network service ${name} is not found`);
  return ns;
}

export interface DiscoverOptions {
  /** The registration of an endpoint this agent hosts, by name. */
  hosted?: (name: string) => NetworkServiceEndpoint | undefined;
}

/** A hosted endpoint registered into another domain's registry, known here without asking it. */
function hostedFloating(opts: DiscoverOptions, name: string): NetworkServiceEndpoint | undefined {
  if (domainOf(name) === undefined) return undefined;
  const nse = opts.hosted?.(name);
  return nse?.url ? nse : undefined;
}

export function discoverServer(nsRegistry: NsRegistry, nseRegistry: NseRegistry, opts: DiscoverOptions = {}): NetworkServiceServer {
  return {
    async request(ctx, req) {
      if (clientURL(ctx)) return nextServer(ctx).request(ctx, req);
      const conn = req.connection ?? {};

      const nseName = conn.network_service_endpoint_name;
      if (nseName) {
        const nse = hostedFloating(opts, nseName) ?? (await findEndpoint(ctx, nseRegistry, nseName, true));
        const next = withClientURL(ctx, parseClientURL(nse.url ?? ''));
        return nextServer(next).request(next, req);
      }

      const service = conn.network_service ?? '';
      if (!service) throw new AgentError('INVALID_ARGUMENT', 'network service must not be empty');
      // The two lookups do not depend on each other: both at once (one registry round trip, not
      // two, when the registry is another host's). The service's error comes first, as if in turn.
      const [nsFound, nseFound] = await Promise.allSettled([
        findService(ctx, nsRegistry, conn),
        findAll(nseRegistry.find(ctx, { network_service_endpoint: { network_service_names: [service] }, watch: false })),
      ]);
      if (nsFound.status === 'rejected') throw nsFound.reason;
      if (nseFound.status === 'rejected') throw nseFound.reason;
      const ns = nsFound.value;
      const found = nseFound.value;
      const live = found
        .map((r) => r.network_service_endpoint)
        .filter((e): e is NetworkServiceEndpoint => !!e && (e.network_service_names ?? []).includes(service))
        .filter((e) => !expired(ctx, e));
      const endpoints = matchEndpoint(conn.labels ?? {}, ns, live);
      if (endpoints.length === 0) {
        throw new AgentError('NO_CANDIDATES', `network service endpoint candidates not found for ${service}`);
      }
      const withPayload: Connection = ns.payload ? { ...conn, payload: ns.payload } : conn;
      const next = withCandidates(ctx, { networkService: ns, endpoints });
      return nextServer(next).request(next, { ...req, connection: withPayload });
    },

    async close(ctx, conn) {
      const nseName = conn.network_service_endpoint_name;
      if (clientURL(ctx) || !nseName) return nextServer(ctx).close(ctx, conn);
      let next = ctx;
      try {
        const nse = hostedFloating(opts, nseName) ?? (await findEndpoint(ctx, nseRegistry, nseName, false));
        next = withClientURL(ctx, parseClientURL(nse.url ?? ''));
      } catch (err) {
        ctx.log.warn('discover: endpoint of a closing connection not found', { id: conn.id, endpoint: nseName, err });
      }
      return nextServer(next).close(next, conn);
    },
  };
}
