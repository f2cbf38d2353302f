/**
 * `nsm-agent status`: the CLI's view of a StatusResponse (what `--json` prints, documented as
 * stable in docs/commands.md) and its table. Lines stay within ~100 columns: each connection is
 * one table row, with its path, peer and last heal on indented lines under it.
 */
import { fromTimestamp } from '../../api/time';
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
  /** The agent's X.509-SVID; spiffeId '' and expires undefined until it is loaded. */
  svid: { spiffeId: string; expires: number | undefined; source: string };
  /** identity.federation: each trust domain's bundle endpoint and the bundle in use ([] when none). */
  federation: FederationView[];
  endpoints: { name: string; services: string[]; cidr: string; netns: string; url: string; labels: Record<string, string>; connections: number }[];
  connections: ConnectionView[];
  /** Connections held for the host namespace that carry DNS: wired into systemd-resolved or why not. */
  hostDns: HostDnsLineView[];
}

export interface HostDnsLineView {
  connectionId: string;
  interface: string;
  servers: string[];
  /** Routing domains (shown as ~domain). */
  domains: string[];
  wired: boolean;
  /** Why it is not wired; '' when wired or not tried yet. */
  reason: string;
}

export interface FederationView {
  trustDomain: string;
  url: string;
  endpointId: string;
  /** pending, ok or failing (the last good bundle stays in use). */
  state: string;
  authorities: number;
  sequence: number;
  fetched: number | undefined;
  /** The last failure while failing: its stable code and message; '' otherwise. */
  errorCode: string;
  error: string;
  nextRefresh: number | undefined;
}

export interface RouteView {
  /** KERNEL (a veth on this host), WIREGUARD or VXLAN. */
  mechanism: string;
  /** The agent at the tunnel's other end, as it names itself in the path. */
  peerAgent: string;
  /** The other host's underlay address. */
  peerHost: string;
  /** The URL this agent dialled the next agent at; '' on the serving side. */
  peerUrl: string;
  /** The local tunnel interface. */
  device: string;
}

export interface HealView {
  started: number | undefined;
  trigger: string;
  detail: string;
  attempts: number;
  reselected: boolean;
  /** Undefined while the heal runs. */
  recovered: number | undefined;
  count: number;
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
  /** out, in, local or transit: where the client and the endpoint are, seen from this agent. */
  direction: string;
  /** The way between the hosts; null for a held connection not established. */
  route: RouteView | null;
  /** The node the client runs on. */
  clientNode: string;
  /** This side's addresses: the client's for out, the endpoint's for in. */
  localIps: string[];
  /** The other side's addresses. */
  peerIps: string[];
  /** Null when it never healed since the agent started (or the agent does not hold it). */
  lastHeal: HealView | null;
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

/** "rx 1.5 KiB (12), tx 900 B (10), handshake 3s ago" for the line under a row. */
function trafficDetail(c: ConnectionView): string[] {
  const t = c.traffic;
  if (!t) return [];
  const hs = t.handshakeAgeMs !== undefined ? `, handshake ${Math.round(t.handshakeAgeMs / 1000)}s ago` : '';
  return [`${t.side} rx ${bytes(t.rxBytes)} (${t.rxPackets}), tx ${bytes(t.txBytes)} (${t.txPackets})${hs}`];
}

function tunnelView(s: any, c: any): ConnectionView['tunnel'] {
  if (!s.remote) return null;
  const mech = s.remote.mechanism ?? c.mechanism ?? {};
  return { type: mech.type ?? '', parameters: mech.parameters ?? {}, device: s.remote.device ? JSON.parse(s.remote.device) : null };
}

function routeView(r: any): RouteView | null {
  if (!r) return null;
  return { mechanism: r.mechanism ?? '', peerAgent: r.peer_agent ?? '', peerHost: r.peer_host ?? '', peerUrl: r.peer_url ?? '', device: r.device ?? '' };
}

function healView(h: any): HealView | null {
  if (!h) return null;
  return {
    started: fromTimestamp(h.started),
    trigger: h.trigger ?? '',
    detail: h.detail ?? '',
    attempts: h.attempts ?? 0,
    reselected: !!h.reselected,
    recovered: fromTimestamp(h.recovered),
    count: h.count ?? 0,
  };
}

/** A ConnectionStatus as received (or as Agent.status() returns it). */
export function viewConnection(s: any): ConnectionView {
  const c = s.connection ?? {};
  const segs = c.path?.path_segments ?? [];
  const src: string[] = c.context?.ip_context?.src_ip_addrs ?? [];
  const dst: string[] = c.context?.ip_context?.dst_ip_addrs ?? [];
  // An agent older than these fields sends no direction: the client's side, as it showed before.
  const direction: string = s.direction || 'out';
  const serving = direction === 'in';
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
    srcIps: src,
    dstIps: dst,
    origin: s.origin,
    created: fromTimestamp(s.created),
    path: segs.map((p: any) => ({ name: p.name, id: p.id, expires: fromTimestamp(p.expires) })),
    direction,
    route: routeView(s.route),
    clientNode: s.client_node ?? '',
    localIps: serving ? dst : src,
    peerIps: serving ? src : dst,
    lastHeal: healView(s.last_heal),
    traffic: trafficView(s.traffic),
  };
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
    svid: { spiffeId: s.svid?.spiffe_id ?? '', expires: fromTimestamp(s.svid?.expires), source: s.svid?.source ?? '' },
    federation: (s.federation ?? []).map((f: any) => ({
      trustDomain: f.trust_domain ?? '',
      url: f.url ?? '',
      endpointId: f.endpoint_id ?? '',
      state: f.state ?? '',
      authorities: f.authorities ?? 0,
      sequence: Number(f.sequence ?? 0),
      fetched: fromTimestamp(f.fetched),
      errorCode: f.error_code ?? '',
      error: f.error ?? '',
      nextRefresh: fromTimestamp(f.next_refresh),
    })),
    endpoints: s.endpoints,
    connections: (s.connections ?? []).map(viewConnection),
    hostDns: (s.host_dns ?? []).map((h: any) => ({
      connectionId: h.connection_id ?? '',
      interface: h.interface ?? '',
      servers: h.servers ?? [],
      domains: h.domains ?? [],
      wired: !!h.wired,
      reason: h.reason ?? '',
    })),
  };
}

const INDENT = '    ';

/** `in 40m (2026-12-07T06:00:00Z)`, or `EXPIRED 3m ago (...)`. */
function expiry(ms: number, now: number): string {
  const at = new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
  return ms > now ? `expires in ${age(now, ms)} (${at})` : `EXPIRED ${age(ms, now)} ago (${at})`;
}

function identityLine(s: StatusView, now: number): string {
  if (!s.svid?.spiffeId) return s.identity;
  return `${s.svid.spiffeId} from ${s.svid.source}${s.svid.expires ? `, ${expiry(s.svid.expires, now)}` : ''}`;
}

/** `domain-b.org from https://..., ok, 1 authority (sequence 7) fetched 2m ago` or its failure. */
function federationLine(f: FederationView, now: number): string {
  const held = f.fetched ? `${f.authorities} ${f.authorities === 1 ? 'authority' : 'authorities'}${f.sequence ? ` (sequence ${f.sequence})` : ''} fetched ${age(f.fetched, now)} ago` : 'no bundle fetched yet';
  const failing = f.state === 'failing' ? `, FAILING: ${f.error} (${f.errorCode})` : '';
  return `${f.trustDomain} from ${f.url}, ${f.state}, ${held}${failing}`;
}

function registryLine(s: StatusView, now: number): string {
  const h = s.registryHealth;
  if (!h) return s.registry;
  const since = h.since ? ` for ${age(h.since, now)}` : '';
  if (h.state === 'unreachable') return `${s.registry}, UNREACHABLE${since}: ${h.error}`;
  return `${s.registry}, ${h.state}${since}`;
}

/** `nsm-1: 172.16.1.100 ~my.service (systemd-resolved)`, or NOT WIRED with the reason under it. */
function hostDnsLines(h: HostDnsLineView): string[] {
  const what = `host DNS:  ${h.interface}: ${[...h.servers, ...h.domains.map((d) => `~${d}`)].join(' ')}`;
  if (h.wired) return [`${what} (systemd-resolved)`];
  return [`${what} NOT WIRED`, ...(h.reason ? [`${INDENT}${h.reason}`] : [])];
}

/** `WIREGUARD to host-b`, `veth (local)`. */
function pathCell(c: ConnectionView): string {
  const r = c.route;
  if (!r) return '';
  if (c.direction === 'local' || (!r.peerAgent && !r.peerHost && r.mechanism === 'KERNEL')) return 'veth (local)';
  const toward = c.direction === 'in' ? 'from' : 'to';
  return `${r.mechanism} ${toward} ${r.peerAgent || r.peerHost || '?'}`;
}

/** `host-b 10.0.0.2, tcp://10.0.0.2:5001, device wg0`. */
function peerDetail(c: ConnectionView): string {
  const r = c.route;
  if (!r || c.direction === 'local') return '';
  return [[r.peerAgent, r.peerHost].filter(Boolean).join(' '), r.peerUrl, r.device ? `device ${r.device}` : ''].filter(Boolean).join(', ');
}

function healDetail(h: HealView, now: number): string {
  const when = h.started ? `${age(h.started, now)} ago` : '';
  const cause = h.detail ? `${h.trigger}: ${h.detail}` : h.trigger;
  const how = h.reselected ? 'reselected' : 'same path';
  const attempts = `${h.attempts} attempt${h.attempts === 1 ? '' : 's'}`;
  const outcome = h.recovered !== undefined ? `back in ${Math.round(h.recovered - (h.started ?? h.recovered))} ms` : 'HEALING';
  const times = h.count > 1 ? `, ${h.count} heals since start` : '';
  return `last heal ${when} (${cause}): ${outcome}, ${attempts}, ${how}${times}`;
}

/** Table rows, each with its indented detail lines under it. */
function rowsWithDetails(headers: string[], rows: { cells: string[]; details: string[] }[]): string {
  if (rows.length === 0) return '(none)';
  const lines = table(headers, rows.map((r) => r.cells)).split('\n');
  const out = [lines[0]!];
  rows.forEach((r, i) => {
    out.push(lines[i + 1]!);
    for (const d of r.details) out.push(`${INDENT}${d}`);
  });
  return out.join('\n');
}

/** `nsm-1 in nsc: 172.16.1.101/32 -> icmp-responder-b 172.16.1.100/32`: this side first. */
function addressDetail(c: ConnectionView): string {
  const where = c.interface ? `${c.interface}${c.netns ? ` in ${c.netns}` : ''}: ` : '';
  const here = c.localIps.join(',') || '-';
  const there = [c.direction === 'in' ? `client on ${c.clientNode || '?'}` : c.endpoint, c.peerIps.join(',')].filter(Boolean).join(' ');
  return `${where}${here} -> ${there || '?'}`;
}

function connectionsTable(list: ConnectionView[], now: number): string {
  return rowsWithDetails(
    ['ID', 'SERVICE', 'STATE', 'PATH', 'AGE'],
    list.map((c) => ({
      cells: [c.clientId, c.service, c.state, pathCell(c), c.created ? age(c.created, now) : ''],
      details: [addressDetail(c), ...(peerDetail(c) ? [`via ${peerDetail(c)}`] : []), ...trafficDetail(c), ...(c.lastHeal ? [healDetail(c.lastHeal, now)] : [])],
    })),
  );
}

function servedTable(list: ConnectionView[], now: number): string {
  return rowsWithDetails(
    ['CLIENT', 'ID', 'SERVICE', 'ENDPOINT', 'STATE', 'PATH', 'AGE'],
    list.map((c) => {
      const clientIps = c.direction === 'in' ? c.peerIps : c.localIps;
      const endpointIps = c.direction === 'in' ? c.localIps : c.peerIps;
      return {
        cells: [c.clientNode, c.clientId, c.service, c.endpoint, c.state, pathCell(c), c.created ? age(c.created, now) : ''],
        details: [`${endpointIps.join(',') || '-'} <- client ${clientIps.join(',') || '-'}`, ...(peerDetail(c) ? [`via ${peerDetail(c)}`] : []), ...trafficDetail(c)],
      };
    }),
  );
}

export function printStatus(s: StatusView, now = Date.now()): string {
  // This host's clients (and transit hops); served: the clients of endpoints hosted here.
  const own = s.connections.filter((c) => c.direction !== 'in');
  const served = s.connections.filter((c) => c.direction === 'in' || c.direction === 'local');
  const out = [
    `agent ${s.name} (nsm-agent ${s.version}), up ${s.started ? age(s.started, now) : '?'}`,
    `identity:  ${identityLine(s, now)}`,
    `registry:  ${registryLine(s, now)}`,
    ...(s.federation ?? []).map((f) => `federated: ${federationLine(f, now)}`),
    `listening: ${s.listen.join(', ')}`,
    `endpoints registered as: ${s.url}${s.tunnelIP ? `, tunnel IP ${s.tunnelIP}` : ''}`,
    ...(s.hostDns ?? []).flatMap(hostDnsLines),
    '',
    'ENDPOINTS',
    rowsWithDetails(
      ['NAME', 'SERVICES', 'CIDR', 'NETNS', 'CONNECTIONS'],
      s.endpoints.map((e) => ({ cells: [e.name, e.services.join(','), e.cidr, e.netns, String(e.connections)], details: [] })),
    ),
    '',
    'CONNECTIONS',
    connectionsTable(own, now),
    '',
    'SERVED (clients of the endpoints hosted here)',
    servedTable(served, now),
  ];
  return out.join('\n');
}
