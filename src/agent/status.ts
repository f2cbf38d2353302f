/**
 * What `nsm-agent status` shows (nsmagent.v1.Agent Status) and the one-line summary of
 * systemd's STATUS=, projected from the agent's parts. Pure: everything comes in as `StatusSources`.
 */
import { stateName, type Connection, type Mechanism } from '../api';
import { toTimestamp } from '../api/time';
import { parseNsURL } from '../networkservice/nsurl';
import type { HostedEndpoint } from './endpoints';
import type { HeldConnection, PendingConnection } from './held';
import type { RegistryHealthView } from './registry-health';
import type { TrafficView } from './metrics/traffic';

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
  endpoints: HostedEndpoint[];
  /** The server chain's connections (the monitor hub). */
  connections: Connection[];
  /** The established held connections. */
  held: Iterable<HeldConnection>;
  /** Held connections not established, being retried. */
  pending: PendingConnection[];
  /** The tunnel of a connection (by its id at this agent). */
  tunnelOf(id: string): { mechanism?: Mechanism; device?: Record<string, unknown> };
  /** The traffic of a connection (by its id at this agent), when it was read. */
  traffic?: (id: string) => TrafficView | undefined;
}

export function projectStatus(s: StatusSources) {
  // A held connection is the client side of one server connection: the next segment's id.
  const heldByAgentId = new Map<string, HeldConnection>();
  for (const h of s.held) {
    const seg = h.conn.path?.path_segments?.[1];
    if (seg?.id) heldByAgentId.set(seg.id, h);
  }
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
    endpoints: s.endpoints.map((e) => ({
      name: e.cfg.name,
      services: e.cfg.services,
      cidr: e.cfg.cidr,
      netns: e.cfg.netns,
      url: e.registration.url ?? '',
      labels: e.cfg.labels,
      connections: e.connectionCount(),
    })),
    connections: s.connections
      .map((conn) => {
        const held = heldByAgentId.get(conn.id ?? '');
        const params = conn.mechanism?.parameters ?? {};
        const tunnel = s.tunnelOf(conn.id ?? '');
        const traffic = s.traffic?.(conn.id ?? '');
        const nsPath = params['inodeURL'] ? String(params['inodeURL']).replace(/^file:\/\//, '') : String(tunnel.device?.['netns'] ?? '');
        return {
          connection: { ...conn, state: stateName(conn.state) },
          origin: held ? 'agent' : 'client',
          created: held ? toTimestamp(held.created) : undefined,
          netns: held?.netns ?? nsPath.replace(/^\/run\/netns\//, ''),
          interface: params['name'] ?? String(tunnel.device?.['ifname'] ?? ''),
          ...(tunnel.mechanism || tunnel.device ? { remote: { mechanism: tunnel.mechanism ?? null, device: tunnel.device ? JSON.stringify(tunnel.device) : '' } } : {}),
          ...(traffic ? { traffic } : {}),
        };
      })
      .concat(
        // Held connections not established (yet, or since a failed heal): DOWN, being retried.
        s.pending.map((p) => ({
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
        })),
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
