/**
 * The client commands: they talk to a running agent over its unix socket and print
 * tables, or JSON with --json.
 */
import { readFileSync } from 'node:fs';
import type { NetworkService, NetworkServiceEndpoint } from '../../api';
import { fromTimestamp } from '../../api/time';
import { AgentError } from '../../core/errors';
import { localClients, streamAll, unaryCall, LocalClients } from '../client';
import { parseManifests } from '../manifest';
import { age, table } from './format';

export interface StatusView {
  name: string;
  version: string;
  started: number | undefined;
  registry: string;
  /** A remote registry's reachability (absent when embedded): state since a time (ms). */
  registryHealth?: { url: string; state: string; since: number | undefined; error: string };
  listen: string[];
  /** The URL endpoints of this agent are registered with. */
  url: string;
  tunnelIP: string;
  identity: string;
  endpoints: { name: string; services: string[]; cidr: string; netns: string; url: string; labels: Record<string, string>; connections: number }[];
  connections: ConnectionView[];
}

export interface ConnectionView {
  /** The connection's one id: its client's (the first path segment's), as the table shows it and disconnect takes it. */
  id: string;
  /** The same as id (kept for scripts that read it). */
  clientId: string;
  /** This agent's id for its own hop (path segment); disconnect takes it too. */
  agentId: string;
  service: string;
  endpoint: string;
  state: string;
  mechanism: string;
  /** The connection's mechanism parameters, as on the wire. */
  parameters: Record<string, string>;
  /** For a vWire to another host: the tunnel's mechanism (as the next hop chose it) and device. */
  tunnel: { type: string; parameters: Record<string, string>; device: Record<string, unknown> | null } | null;
  netns: string;
  interface: string;
  srcIps: string[];
  dstIps: string[];
  origin: string;
  created: number | undefined;
  path: { name: string; id: string; expires: number | undefined }[];
  /** The counters of the connection's interface at this host (as the interface counts them); null when not read. */
  traffic: { side: string; rxBytes: number; txBytes: number; rxPackets: number; txPackets: number; handshakeAgeMs: number | undefined } | null;
}

function trafficView(t: any): ConnectionView['traffic'] {
  if (!t) return null;
  const ms = Number(t.handshake_age_ms ?? 0);
  return { side: t.side, rxBytes: Number(t.rx_bytes), txBytes: Number(t.tx_bytes), rxPackets: Number(t.rx_packets), txPackets: Number(t.tx_packets), handshakeAgeMs: ms > 0 ? ms : undefined };
}

/** 1536 -> "1.5 KiB" */
function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}

function tunnelView(s: any, c: any): ConnectionView['tunnel'] {
  if (!s.remote) return null;
  const mech = s.remote.mechanism ?? c.mechanism ?? {};
  return { type: mech.type ?? '', parameters: mech.parameters ?? {}, device: s.remote.device ? JSON.parse(s.remote.device) : null };
}

function viewConnection(s: any): ConnectionView {
  const c = s.connection ?? {};
  const segs = c.path?.path_segments ?? [];
  return {
    id: segs[0]?.id ?? c.id,
    clientId: segs[0]?.id ?? c.id,
    agentId: c.id,
    service: c.network_service,
    endpoint: c.network_service_endpoint_name,
    state: c.state,
    mechanism: c.mechanism?.type ?? '',
    parameters: c.mechanism?.parameters ?? {},
    tunnel: tunnelView(s, c),
    netns: s.netns,
    interface: s.interface,
    srcIps: c.context?.ip_context?.src_ip_addrs ?? [],
    dstIps: c.context?.ip_context?.dst_ip_addrs ?? [],
    origin: s.origin,
    created: fromTimestamp(s.created),
    path: segs.map((p: any) => ({ name: p.name, id: p.id, expires: fromTimestamp(p.expires) })),
    traffic: trafficView(s.traffic),
  };
}

async function withClients<T>(socket: string, fn: (c: LocalClients) => Promise<T>): Promise<T> {
  const c = localClients(socket);
  try {
    return await fn(c);
  } catch (err) {
    const e = AgentError.from(err);
    // An agent that answered may report another component unreachable (the registry at its URL).
    if (e.code === 'UNAVAILABLE' && !e.message.includes('cannot reach the ')) throw new AgentError('UNAVAILABLE', `cannot reach the agent at ${socket}: ${e.message}`);
    throw e;
  } finally {
    c.close();
  }
}

export async function getStatus(socket: string): Promise<StatusView> {
  return withClients(socket, async (c) => {
    return viewStatus(await unaryCall<any>(c.agent, 'Status', {}));
  });
}

/** The CLI's view of a StatusResponse (as received, or as Agent.status() returns it). */
export function viewStatus(s: any): StatusView {
    return {
      name: s.name,
      version: s.version,
      started: fromTimestamp(s.started),
      registry: s.registry,
      ...(s.registry_health
        ? { registryHealth: { url: s.registry_health.url, state: s.registry_health.state, since: fromTimestamp(s.registry_health.since), error: s.registry_health.error ?? '' } }
        : {}),
      listen: s.listen,
      url: s.url,
      tunnelIP: s.tunnel_ip,
      identity: s.identity,
      endpoints: s.endpoints,
      connections: (s.connections ?? []).map(viewConnection),
    };
}

export function printStatus(s: StatusView): string {
  const out = [
    `agent ${s.name} (nsm-agent ${s.version}), up ${s.started ? age(s.started) : '?'}`,
    `identity: ${s.identity}`,
    `registry: ${s.registry}${registryHealthLine(s)}`,
    `listening: ${s.listen.join(', ')}`,
    `endpoints registered as: ${s.url}${s.tunnelIP ? `, tunnel IP ${s.tunnelIP}` : ''}`,
    '',
    'ENDPOINTS',
    table(
      ['NAME', 'SERVICES', 'CIDR', 'NETNS', 'CONNECTIONS'],
      s.endpoints.map((e) => [e.name, e.services.join(','), e.cidr, e.netns, String(e.connections)]),
    ),
    '',
    'CONNECTIONS',
    table(
      ['ID', 'SERVICE', 'ENDPOINT', 'STATE', 'MECH', 'NETNS', 'IF', 'ADDRESS', 'PEER', 'AGE'],
      s.connections.map((c) => [
        c.clientId,
        c.service,
        c.endpoint,
        c.state,
        c.tunnel && c.tunnel.type !== c.mechanism ? `${c.mechanism}/${c.tunnel.type}` : c.mechanism,
        c.netns,
        c.interface,
        c.srcIps.join(','),
        c.dstIps.join(','),
        c.created ? age(c.created) : '',
      ]),
    ),
  ];
  const withTraffic = s.connections.filter((c) => c.traffic);
  if (withTraffic.length) {
    out.push(
      '',
      'TRAFFIC',
      table(
        ['ID', 'INTERFACE', 'RX', 'TX', 'RX PACKETS', 'TX PACKETS', 'HANDSHAKE'],
        withTraffic.map((c) => {
          const t = c.traffic!;
          return [c.clientId, t.side, bytes(t.rxBytes), bytes(t.txBytes), String(t.rxPackets), String(t.txPackets), t.handshakeAgeMs !== undefined ? `${Math.round(t.handshakeAgeMs / 1000)}s ago` : ''];
        }),
      ),
    );
  }
  return out.join('\n');
}

function registryHealthLine(s: StatusView): string {
  const h = s.registryHealth;
  if (!h) return '';
  const since = h.since ? ` for ${age(h.since)}` : '';
  if (h.state === 'unreachable') return ` (unreachable${since}: ${h.error})`;
  return ` (${h.state}${since})`;
}

export async function connect(socket: string, url: string, netns: string, id?: string): Promise<ConnectionView> {
  return withClients(socket, async (c) => viewConnection(await unaryCall<any>(c.agent, 'Connect', { url, netns, id: id ?? '' }, 30_000)));
}

export async function disconnect(socket: string, id: string): Promise<void> {
  await withClients(socket, (c) => unaryCall(c.agent, 'Disconnect', { id }));
}

export async function services(socket: string): Promise<NetworkService[]> {
  return withClients(socket, async (c) => {
    const res = await streamAll<any>(c.ns, 'Find', { network_service: {}, watch: false });
    return res.filter((r) => !r.deleted).map((r) => r.network_service);
  });
}

export function printServices(list: NetworkService[]): string {
  return table(
    ['NAME', 'PAYLOAD', 'MATCHES'],
    list.map((s) => [s.name ?? '', s.payload ?? '', String(s.matches?.length ?? 0)]),
  );
}

export async function endpoints(socket: string): Promise<NetworkServiceEndpoint[]> {
  return withClients(socket, async (c) => {
    const res = await streamAll<any>(c.nse, 'Find', { network_service_endpoint: {}, watch: false });
    return res.filter((r) => !r.deleted).map((r) => r.network_service_endpoint);
  });
}

export function printEndpoints(list: NetworkServiceEndpoint[]): string {
  return table(
    ['NAME', 'SERVICES', 'URL', 'LABELS', 'EXPIRES'],
    list.map((e) => {
      const exp = fromTimestamp(e.expiration_time);
      const labels = Object.values(e.network_service_labels ?? {})
        .flatMap((l) => Object.entries(l.labels ?? {}).map(([k, v]) => `${k}=${v}`));
      return [e.name ?? '', (e.network_service_names ?? []).join(','), e.url ?? '', [...new Set(labels)].join(','), exp ? `in ${age(Date.now(), exp)}` : ''];
    }),
  );
}

export async function apply(socket: string, file: string): Promise<NetworkService[]> {
  let text: string;
  try {
    text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  } catch (err) {
    throw new AgentError('INVALID_ARGUMENT', `${file}: cannot read: ${(err as Error).message}`);
  }
  const list = parseManifests(text, file);
  return withClients(socket, async (c) => {
    const out: NetworkService[] = [];
    for (const ns of list) out.push(await unaryCall<NetworkService>(c.ns, 'Register', ns));
    return out;
  });
}
