/**
 * What `nsm-agent status` shows (nsmagent.v1.Agent Status) and the one-line summary of
 * systemd's STATUS=, projected from the agent's parts. Pure: everything comes in as `StatusSources`.
 */
import { stateName, type Connection, type Mechanism } from '../api';
import { toTimestamp } from '../api/time';
import { parseNsURL } from '../networkservice/nsurl';
import type { HostedEndpoint } from './endpoints';
import type { HeldConnection, PendingConnection } from './held';
import type { LastHeal } from './journal';
import type { RegistryHealthView } from './registry-health';
import type { TrafficView } from './metrics/traffic';
import type { HostDnsView } from './dns/hostdns';
import type { FederationStatus } from '../spire/federation';

export interface StatusSources {
  name: string;
  version: string;
  /** When the agent started (ms since the epoch). */
  started: number;
  registry: string;
  /** A remote registry's reachability; undefined when embedded. */
  registryHealth?: RegistryHealthView;
  listen: string[];
  url: string;
  tunnelIp: string;
  identity: string;
  /** The agent's X.509-SVID (id '' and expires 0 until loaded). */
  svid: { id: string; expires: number; source: string };
  /** The bundle endpoints of identity.federation. */
  federation?: FederationStatus[];
  endpoints: HostedEndpoint[];
  /** The server chain's connections (the monitor hub). */
  connections: Connection[];
  /** The established held connections. */
  held: Iterable<HeldConnection>;
  /** Held connections not established, being retried. */
  pending: PendingConnection[];
  /** The tunnel of a connection (by its id at this agent). */
  tunnelOf(id: string): { mechanism?: Mechanism; device?: Record<string, unknown> };
  /** First-seen times and next hop URLs (by this agent's connection id), last heals (by the held connection's id). */
  journal: { since(id: string): number | undefined; nextHop(id: string): string | undefined; lastHeal(id: string): LastHeal | undefined };
  /** The traffic of a connection (by its id at this agent), when it was read. */
  traffic?: (id: string) => TrafficView | undefined;
  /** `netns: host` connections with DNS and whether systemd-resolved has it (dns/hostdns.ts). */
  hostDns?: HostDnsView[];
}

const TUNNELS = new Set(['WIREGUARD', 'VXLAN']);

/** Where the connection's client and endpoint are, seen from this agent. */
function directionOf(conn: Connection, hosted: Set<string>, tunnel: { mechanism?: Mechanism }): 'out' | 'in' | 'local' | 'transit' {
  const fromAnotherHost = TUNNELS.has(conn.mechanism?.type ?? '');
  const toAnotherHost = !!tunnel.mechanism || !hosted.has(conn.network_service_endpoint_name ?? '');
  if (fromAnotherHost) return toAnotherHost ? 'transit' : 'in';
  return toAnotherHost ? 'out' : 'local';
}

function segmentName(conn: Connection, offset: number): string {
  const segs = conn.path?.path_segments ?? [];
  return segs[(conn.path?.index ?? 0) + offset]?.name ?? '';
}

/** The way between the hosts: the tunnel this agent dialled (out) or was dialled on (in), or the local veth. */
function routeOf(conn: Connection, direction: string, tunnel: { mechanism?: Mechanism; device?: Record<string, unknown> }, nextHop: string | undefined) {
  const device = String(tunnel.device?.['device'] ?? tunnel.device?.['ifname'] ?? '');
  if (direction === 'in') {
    const p = conn.mechanism?.parameters ?? {};
    return { mechanism: conn.mechanism?.type ?? '', peer_agent: segmentName(conn, -1), peer_host: p['src_ip'] ?? '', peer_url: '', device };
  }
  if (tunnel.mechanism) {
    const p = tunnel.mechanism.parameters ?? {};
    return { mechanism: tunnel.mechanism.type ?? '', peer_agent: segmentName(conn, 1), peer_host: p['dst_ip'] ?? '', peer_url: nextHop ?? '', device };
  }
  return { mechanism: conn.mechanism?.type ?? '', peer_agent: '', peer_host: '', peer_url: nextHop ?? '', device: '' };
}

type RouteStatus = ReturnType<typeof routeOf>;

function healStatus(h: LastHeal | undefined) {
  if (!h) return undefined;
  return {
    started: toTimestamp(h.started),
    trigger: h.trigger,
    detail: h.detail ?? '',
    attempts: h.attempts,
    reselected: h.reselected,
    recovered: h.recovered !== undefined ? toTimestamp(h.recovered) : null,
    count: h.count,
  };
}

export function projectStatus(s: StatusSources) {
  // A held connection is the client side of one server connection: the next segment's id.
  const heldByAgentId = new Map<string, HeldConnection>();
  for (const h of s.held) {
    const seg = h.conn.path?.path_segments?.[1];
    if (seg?.id) heldByAgentId.set(seg.id, h);
  }
  const hosted = new Set(s.endpoints.map((e) => e.cfg.name));
  return {
    name: s.name,
    version: s.version,
    started: toTimestamp(s.started),
    registry: s.registry,
    ...(s.registryHealth
      ? {
          registry_health: {
            url: s.registryHealth.url,
            state: s.registryHealth.state,
            since: s.registryHealth.since ? toTimestamp(s.registryHealth.since) : null,
            error: s.registryHealth.error,
          },
        }
      : {}),
    listen: [...s.listen],
    url: s.url,
    tunnel_ip: s.tunnelIp,
    identity: s.identity,
    host_dns: (s.hostDns ?? []).map((h) => ({ ...h, servers: [...h.servers], domains: [...h.domains] })),
    svid: { spiffe_id: s.svid.id, expires: s.svid.expires ? toTimestamp(s.svid.expires) : null, source: s.svid.source },
    federation: (s.federation ?? []).map((f) => ({
      trust_domain: f.trustDomain,
      url: f.url,
      endpoint_id: f.endpointId,
      state: f.state,
      authorities: f.authorities,
      sequence: String(f.sequence ?? 0),
      fetched: f.fetched !== undefined ? toTimestamp(f.fetched) : null,
      error: f.lastError?.message ?? '',
      error_code: f.lastError?.code ?? '',
      next_refresh: f.nextRefresh !== undefined ? toTimestamp(f.nextRefresh) : null,
    })),
    endpoints: s.endpoints.map((e) => ({
      name: e.cfg.name,
      services: e.cfg.services,
      cidr: e.cfg.vl3 ? `vL3 ${(e.kind?.status?.()['prefixes'] as string[] | undefined)?.filter(Boolean).join(',') || '(leasing)'}` : e.cfg.cidr,
      netns: e.cfg.netns,
      url: e.registration.url ?? '',
      labels: e.cfg.labels,
      connections: e.connectionCount(),
      ...(e.kind?.status ? { vl3: e.kind?.status() } : {}),
    })),
    connections: s.connections
      .map((conn) => {
        const held = heldByAgentId.get(conn.id ?? '');
        const params = conn.mechanism?.parameters ?? {};
        const tunnel = s.tunnelOf(conn.id ?? '');
        const traffic = s.traffic?.(conn.id ?? '');
        const nsPath = params['inodeURL'] ? String(params['inodeURL']).replace(/^file:\/\//, '') : String(tunnel.device?.['netns'] ?? '');
        const direction = directionOf(conn, hosted, tunnel);
        const since = held ? held.created : s.journal.since(conn.id ?? '');
        const lastHeal = healStatus(s.journal.lastHeal(held?.conn.id ?? ''));
        return {
          connection: { ...conn, state: stateName(conn.state) },
          origin: held ? 'agent' : 'client',
          created: since !== undefined ? toTimestamp(since) : undefined,
          direction,
          route: routeOf(conn, direction, tunnel, s.journal.nextHop(conn.id ?? '')) as RouteStatus | undefined,
          client_node: conn.labels?.['nodeName'] ?? (direction === 'in' ? segmentName(conn, -1) : s.name),
          ...(lastHeal ? { last_heal: lastHeal } : {}),
          netns: held?.netns ?? nsPath.replace(/^\/run\/netns\//, ''),
          interface: params['name'] ?? String(tunnel.device?.['ifname'] ?? ''),
          ...(tunnel.mechanism || tunnel.device ? { remote: { mechanism: tunnel.mechanism ?? null, device: tunnel.device ? JSON.stringify(tunnel.device) : '' } } : {}),
          ...(traffic ? { traffic } : {}),
        };
      })
      .concat(
        // Held connections not established (yet, or since a failed heal): DOWN, being retried.
        s.pending.map((p) => {
          const lastHeal = healStatus(s.journal.lastHeal(p.id));
          return {
          connection: {
            id: p.id,
            network_service: parseNsURL(p.url).networkService,
            state: 'DOWN',
            path: { index: 0, path_segments: [{ id: p.id, name: `${s.name}-nsc` }] },
          } as Connection & { state: string },
          origin: 'agent',
          created: undefined,
          netns: p.netns,
          interface: parseNsURL(p.url).interfaceName ?? '',
          direction: 'out' as const,
          route: undefined,
          client_node: s.name,
          ...(lastHeal ? { last_heal: lastHeal } : {}),
        };
        }),
      ),
  };
}

export type AgentStatus = ReturnType<typeof projectStatus>;

/** The one-line summary used in STATUS= and the log. */
export function statusLine(s: { socket: string; endpoints: number; connections: number; registry: string }, extra: { registryDown?: boolean; note?: string } = {}): string {
  const parts = [`serving on ${s.socket}`, `${s.endpoints} endpoint${s.endpoints === 1 ? '' : 's'}`, `${s.connections} connection${s.connections === 1 ? '' : 's'}`];
  if (extra.registryDown) parts.push(`registry ${s.registry} unreachable`);
  if (extra.note) parts.push(extra.note);
  return parts.join(', ');
}
