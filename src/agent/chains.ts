/**
 * The agent's chains, each an ordered list read top to bottom, as NSM's chains/nsmgr keeps
 * them apart from the daemon that runs them. Pure assembly: every dependency is an argument.
 *
 *   server chain:   [trace] → updatepath → stats → interdomainbypass → begin → updatetoken → authorize → metadata → timeout
 *                   → monitor → trimpath → clientinfo → [swapip] → netsvcmonitor
 *                   → mechanisms{KERNEL, WIREGUARD, VXLAN}
 *                   → preferLocalVl3 → discover
 *                   → roundrobin → connect
 *                   (KERNEL: excludedprefixes → iprule → the veth vWire)
 *   connect:        a hosted endpoint's chain in-process (by endpoint name), or the remote chain
 *   remote chain:   mechanismtranslation → next hop recorder (for status) → tunnel clients
 *                   {WIREGUARD, VXLAN} → [swapip, with publicIP] → downstream monitor (DOWN and REFRESH_REQUESTED passed on
 *                   to the hub) → authorize → dial (gRPC)
 *   endpoint chain: updatepath → updatetoken → [dnscontext, with `dns`] → policyroute → the kind's elements
 *                   (p2p: ipam → KERNEL endpoint side; passthrough: passthrough, which requests
 *                   the same service through the passthrough client) → trimpath
 *   passthrough:    updatepath (the endpoint's name) → updatetoken → server chain (in-process)
 *   held conns:     updatepath → begin → metadata → refresh → heal → updatetoken → server chain
 *                   (in-process; heal watches this agent's own monitor hub and pings)
 *   relay (interdomain.relay, the site's nsmgr-proxy): relayingServer picks, per call, the
 *                   server chain or: updatepath → updatetoken → authorize → monitor (the relay's
 *                   hub) → interdomainbypass → relay → downstream monitor → authorize → dial
 */
import type { Connection, NetworkServiceEndpoint } from '../api';
import type { Logger } from '../core/log';
import { chainClient, chainServer, serverToClient, NetworkServiceClient, NetworkServiceServer } from '../core/networkservice';
import type { NsRegistry, NseRegistry } from '../core/registry';
import { kernelSide } from '../mechanisms/kernel/params';
import { authorizeClient, authorizeServer, ServicePolicy } from '../networkservice/authorize';
import { beginClient, beginServer } from '../networkservice/begin';
import { clientInfoServer } from '../networkservice/clientinfo';
import { connectServer } from '../networkservice/connect';
import { preferLocalVl3Server, type LocalVl3Endpoint } from './endpoints/vl3/prefer-local';
import { discoverServer } from '../networkservice/discover';
import { interdomainBypassServer } from '../networkservice/interdomainbypass';
import { healClient, kernelLivenessCheck, type HealObserver, type HealOptions } from '../networkservice/heal';
import { mechanismsServer } from '../networkservice/mechanisms';
import { netsvcmonitorServer } from '../networkservice/netsvcmonitor';
import type { Ctx } from '../core/ctx';
import { metadataClient, metadataServer } from '../networkservice/metadata';
import { MonitorHub, monitorDownstreamClient, monitorServer } from '../networkservice/monitor';
import { refreshClient } from '../networkservice/refresh';
import { roundRobinServer } from '../networkservice/roundrobin';
import { statsServer, type StatsOptions } from '../networkservice/stats';
import { swapIpClient, swapIpServer, type SwapIpOptions } from '../networkservice/swapip';
import { traceServer, tracedClient, tracedServer, type Tracer } from '../networkservice/trace';
import { timeoutServer } from '../networkservice/timeout';
import { trimPathServer } from '../networkservice/trimpath';
import { updatePathClient, updatePathServer } from '../networkservice/updatepath';
import type { TokenSource } from '../core/token';
import { updateTokenClient, updateTokenServer } from '../networkservice/updatetoken';
import type { AgentConfig } from './config';
import { ChannelPool, dialClient } from './grpc/dial';
import { relayingServer, relayServer, RelayTable } from '../networkservice/relay';

export interface ServerChainDeps {
  /** The agent's name: its path segment and the clients' nodeName label. */
  name: string;
  /** This site's domain: Requests for `name@<domain>` are served here, the suffix stripped. */
  domain?: string | undefined;
  tokens: TokenSource;
  /** This agent's SPIFFE ID (undefined until the identity is loaded). */
  selfId: () => string | undefined;
  /** Whether this agent holds a bundle for a trust domain (its own or a federated one). */
  trusts: (trustDomain: string) => boolean;
  policy: AgentConfig['policy'];
  hub: MonitorHub;
  /** The mechanism handlers, by mechanism type (KERNEL, and WIREGUARD and VXLAN with an underlay). */
  mechanisms: Record<string, NetworkServiceServer>;
  registry: { ns: NsRegistry; nse: NseRegistry };
  /** The chain of a hosted endpoint, by its name. */
  local: (endpoint: string) => NetworkServiceServer | undefined;
  /** The registration of a hosted endpoint, by its name (a floating one is found by it). */
  hosted?: (endpoint: string) => NetworkServiceEndpoint | undefined;
  /** The chain to endpoints on other hosts; without it, only hosted endpoints are reached. */
  remote?: NetworkServiceClient;
  /** The hosted vL3 endpoint serving a service, if any (requests for it go there). */
  localVl3?: (service: string) => LocalVl3Endpoint | undefined;
  /** Traffic figures for the path segment metrics, and the Request timing; absent: no stats element. */
  stats?: StatsOptions;
  /** Behind NAT: the public address answered in REMOTE mechanisms (swapip). */
  nat?: SwapIpOptions;
  /** Spans of the hop and of the elements that work (dataplane, registry, next hop), when tracing is on. */
  tracer?: Tracer;
  /** The Ctx of background work (the agent's lifetime): the services' watches. */
  background?: () => Ctx;
}

/** `element` traced as `name` when there is a tracer. */
function traced(tracer: Tracer | undefined, name: string, element: NetworkServiceServer): NetworkServiceServer {
  return tracer ? tracedServer(tracer, name, element) : element;
}

/** The local NSM manager and forwarder: what local clients and other hosts' agents call. */
export function serverChain(d: ServerChainDeps): NetworkServiceServer {
  return chainServer(
    ...(d.tracer ? [traceServer(d.tracer, d.name)] : []),
    updatePathServer(d.name, { requireConnectionId: true }),
    ...(d.stats ? [statsServer(d.stats)] : []),
    interdomainBypassServer({ ownDomain: d.domain, hosts: (name) => d.local(name) !== undefined }),
    beginServer(),
    updateTokenServer(d.tokens, { trustLocalCallers: true, self: d.selfId }),
    authorizeServer({ servicePolicy: new ServicePolicy(d.policy), self: d.selfId, trusts: d.trusts }),
    metadataServer(),
    timeoutServer(),
    monitorServer(d.hub),
    trimPathServer(),
    clientInfoServer({ nodeName: d.name }),
    ...(d.nat ? [swapIpServer(d.nat)] : []),
    netsvcmonitorServer({ ns: d.registry.ns, nse: d.registry.nse, ...(d.background ? { background: d.background } : {}) }),
    traced(d.tracer, 'mechanisms', mechanismsServer(d.mechanisms)),
    preferLocalVl3Server(d.localVl3 ?? (() => undefined)),
    traced(d.tracer, 'discover', discoverServer(d.registry.ns, d.registry.nse, { hosted: d.hosted })),
    roundRobinServer(),
    traced(d.tracer, 'connect', connectServer({ local: d.local, remote: d.remote })),
  );
}

export interface RemoteChainDeps {
  /** Translates the local mechanism into the tunnel the next hop chose, and remembers it. */
  translation: NetworkServiceClient;
  /** Tunnel mechanism clients, in order of preference. */
  tunnels: NetworkServiceClient[];
  hub: MonitorHub;
  pool: ChannelPool;
  selfId: () => string | undefined;
  log: Logger;
  /** Records each connection's next hop URL, for status. */
  nextHops?: NetworkServiceClient;
  /** Behind NAT: the public address offered in REMOTE mechanisms (swapip). */
  nat?: SwapIpOptions;
  tracer?: Tracer;
}

/** The way to an endpoint on another host, through that host's agent. */
export function remoteClientChain(d: RemoteChainDeps): NetworkServiceClient {
  return chainClient(
    d.translation,
    ...(d.nextHops ? [d.nextHops] : []),
    ...d.tunnels,
    ...(d.nat ? [swapIpClient(d.nat)] : []),
    // A broken monitor stream to the next host, or its DOWN/DELETE, is DOWN here too: the
    // heal of whoever holds the connection (held connections, local NSCs) takes it from there.
    monitorDownstreamClient({
      monitor: (_ctx, url, selector, onEvent, onError) => d.pool.monitor(url, selector, onEvent, onError),
      onDown: (id, why) => {
        const known = d.hub.get(id);
        if (!known) return;
        d.log.warn('next hop reports the connection down', { id, why });
        d.hub.update({ ...known, state: 'DOWN' });
      },
      // The next hop's push (a vL3 endpoint whose MTU dropped) reaches the client's heal here.
      onRefresh: (id) => {
        if (d.hub.refreshRequested(id)) d.log.debug('next hop requests a refresh', { id });
      },
    }),
    authorizeClient({ self: d.selfId }),
    d.tracer ? tracedClient(d.tracer, 'dial', dialClient(d.pool)) : dialClient(d.pool),
  );
}

/** The endpoint chain of a hosted endpoint: the frame every kind shares around its elements. */
export function endpointChain(name: string, tokens: TokenSource, kind: NetworkServiceServer[], tracer?: Tracer): NetworkServiceServer {
  return chainServer(...(tracer ? [traceServer(tracer, name)] : []), updatePathServer(name), updateTokenServer(tokens), ...kind, trimPathServer());
}

/**
 * The client a passthrough endpoint requests its next element with: a path of its own
 * (beginning with the endpoint's segment) into the server chain, in-process. No refresh and no
 * heal of its own: each Request of the connection it serves refreshes it.
 */
export function passthroughClientChain(d: { endpoint: string; tokens: TokenSource; server: NetworkServiceServer }): NetworkServiceClient {
  return chainClient(updatePathClient(d.endpoint), updateTokenClient(d.tokens), serverToClient(d.server));
}

/**
 * Back-off of heal re-requests: a next hop that comes back is found within HEAL_RETRY_MAX_MS,
 * so a connection recovers within a second of a remote agent's restart.
 */
const HEAL_RETRY = { initialMs: 100, maxMs: 400 };

export interface HeldChainDeps {
  name: string;
  tokens: TokenSource;
  hub: MonitorHub;
  /** The server chain, called in-process. */
  server: NetworkServiceServer;
  /** Connections whose heal keeps their endpoint on reselect, by id. */
  keepsEndpoint?: (id: string) => boolean;
  /** The data-plane check and how often it runs per connection; absent: no check. */
  liveness?: { check: (conn: Connection) => Promise<boolean>; intervalMs: () => number };
  /** Told about each heal (for status). */
  onHeal?: HealOptions['onHeal'];
  /** Told when heals start and end (metrics). */
  observeHeal?: HealObserver;
}

/**
 * The client of the connections the agent holds. They heal as NSM's NSC does: the monitor
 * stream is this agent's own hub (the next hop is in-process).
 */
export function heldClientChain(d: HeldChainDeps): NetworkServiceClient {
  return chainClient(
    updatePathClient(`${d.name}-nsc`),
    beginClient(d.keepsEndpoint ? { keepsEndpoint: d.keepsEndpoint } : {}),
    metadataClient(),
    refreshClient(),
    healClient({
      monitor: (_ctx, selector, onEvent) => d.hub.subscribe(selector, onEvent),
      ...(d.liveness ? { liveness: d.liveness.check, livenessIntervalMs: d.liveness.intervalMs } : {}),
      retry: HEAL_RETRY,
      ...(d.onHeal ? { onHeal: d.onHeal } : {}),
      ...(d.observeHeal ? { observe: d.observeHeal } : {}),
    }),
    updateTokenClient(d.tokens),
    serverToClient(d.server),
  );
}

/**
 * The data-plane check of held connections: ICMP from each source to each destination
 * address in the client's namespace. A failure is confirmed by a second check one interval
 * later before it counts: a wireguard-go that its supervisor is restarting, or an echo lost on
 * a saturated link, must not cost a reselect, which makes a new vWire.
 */
export function confirmedLiveness(heal: AgentConfig['heal'], log: Logger): (conn: Connection) => Promise<boolean> {
  const check = kernelLivenessCheck({
    netnsOf: (conn) => (conn.mechanism?.type === 'KERNEL' ? kernelSide(conn.mechanism).netns : undefined),
    timeoutMs: heal.livenessTimeoutMs,
    log,
  });
  return async (conn) => {
    if (await check(conn)) return true;
    await new Promise((r) => setTimeout(r, heal.livenessIntervalMs));
    return check(conn);
  };
}

export interface RelayChainDeps {
  name: string;
  /** This site's domain: the relay serves its names only. */
  domain: string;
  tokens: TokenSource;
  selfId: () => string | undefined;
  trusts: (trustDomain: string) => boolean;
  /** This domain's registry, where the inner agents' endpoints are found. */
  nse: NseRegistry;
  /** True for an endpoint this agent hosts (whole name or name in this domain). */
  hosts: (endpoint: string) => boolean;
  /** This agent's own URL. */
  selfUrl: () => string | undefined;
  pool: ChannelPool;
  log: Logger;
  table: RelayTable;
  /** The agent's own server chain, for every call that is not relayed. */
  own: NetworkServiceServer;
}

/**
 * The server of an agent that is its site's nsmgr-proxy: Requests and Closes from other hosts
 * for endpoints of the domain hosted by other agents go on to them (control plane only); every
 * other call goes to the agent's own server chain.
 */
export function relayingServerChain(d: RelayChainDeps): NetworkServiceServer {
  const client = chainClient(
    monitorDownstreamClient({
      monitor: (_ctx, url, selector, onEvent, onError) => d.pool.monitor(url, selector, onEvent, onError),
      onDown: (id, why) => {
        d.log.warn('relay: the inner agent reports the connection down', { id, why });
        d.table.down(id);
      },
      onRefresh: (id) => {
        d.table.hub.refreshRequested(id);
      },
    }),
    authorizeClient({ self: d.selfId }),
    dialClient(d.pool),
  );
  const relay = chainServer(
    updatePathServer(d.name),
    updateTokenServer(d.tokens),
    authorizeServer({ self: d.selfId, trusts: d.trusts }),
    monitorServer(d.table.hub),
    interdomainBypassServer({ ownDomain: d.domain }),
    relayServer({ name: d.name, domain: d.domain, table: d.table, client }),
  );
  return relayingServer({ name: d.name, domain: d.domain, hosts: d.hosts, nse: d.nse, selfUrl: d.selfUrl, table: d.table, relay, own: d.own });
}
