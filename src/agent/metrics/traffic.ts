/**
 * The traffic figures of connections: which interfaces a connection has at this host, and their
 * kernel counters read through src/sys (sys.readLinkStats, once per namespace). Shared by the
 * stats element (path segment metrics), the Prometheus exporter and `nsm-agent status`.
 */
import type { Connection } from '../../api';
import * as sys from '../../sys';
import { uapiGet, uapiSocketPath } from '../../mechanisms/wireguard/uapi';
import type { ConnectionFigures, SideFigures } from '../../networkservice/stats';

/** An interface: a namespace (an open handle, or a path or name) and the link's name there. */
export interface InterfaceRef {
  netns: sys.Netns | string;
  ifname: string;
}

/**
 * A connection's interfaces at this host: `server` faces the client (the NSC's interface),
 * `client` faces the endpoint (the NSE's interface), as a forwarder's two sides.
 */
export interface ConnectionInterfaces {
  server?: InterfaceRef;
  client?: InterfaceRef;
}

export type InterfacesOf = (conn: Connection) => ConnectionInterfaces;

/**
 * The forwarder's view of an interface's counters: rx is what came in from the interface's owner
 * (what the interface sent), tx what went out to it. Drops are both directions' drops.
 */
export function forwarderFigures(s: sys.LinkStats): SideFigures {
  return { rxBytes: s.txBytes, txBytes: s.rxBytes, rxPackets: s.txPackets, txPackets: s.rxPackets, drops: s.rxDropped + s.txDropped };
}

const keyOf = (ns: sys.Netns | string): string => (typeof ns === 'string' ? sys.netnsPath(ns) : `${ns.dev}:${ns.inode}`);

/**
 * The counters of each interface (undefined where the namespace or the link is gone), in order:
 * the links of each namespace read in one go (see sys.readLinkStats).
 */
export async function readInterfaces(refs: InterfaceRef[]): Promise<(sys.LinkStats | undefined)[]> {
  const byNs = new Map<string, { ns: sys.Netns | string; names: Set<string>; links?: Map<string, sys.LinkStats> }>();
  const entries = refs.map((r) => {
    let key: string;
    try {
      key = keyOf(r.netns);
    } catch {
      return undefined; // a malformed namespace name: nothing to read
    }
    let entry = byNs.get(key);
    if (entry === undefined) byNs.set(key, (entry = { ns: r.netns, names: new Set() }));
    entry.names.add(r.ifname);
    return entry;
  });
  await Promise.all(
    [...byNs.values()].map(async (entry) => {
      let opened: sys.Netns | undefined;
      try {
        const ns = typeof entry.ns === 'string' ? (opened = sys.openNetns(entry.ns)) : entry.ns;
        entry.links = await sys.readLinkStats(sys.Rtnl.for(ns), entry.names);
      } catch {
        // the namespace is gone (or not ours to read): its interfaces have no figures
      } finally {
        opened?.close();
      }
    }),
  );
  return refs.map((r, i) => entries[i]?.links?.get(r.ifname));
}

/** The figures of each connection's sides, in order. */
export async function readFigures(conns: readonly Connection[], interfacesOf: InterfacesOf): Promise<{ ifs: ConnectionInterfaces; figures: ConnectionFigures }[]> {
  const ifs = conns.map((c) => {
    try {
      return interfacesOf(c);
    } catch {
      return {};
    }
  });
  const refs: InterfaceRef[] = [];
  for (const i of ifs) {
    if (i.server) refs.push(i.server);
    if (i.client) refs.push(i.client);
  }
  const stats = await readInterfaces(refs);
  let at = 0;
  return ifs.map((i) => {
    const figures: ConnectionFigures = {};
    if (i.server) {
      const s = stats[at++];
      if (s) figures.server = forwarderFigures(s);
    }
    if (i.client) {
      const s = stats[at++];
      if (s) figures.client = forwarderFigures(s);
    }
    return { ifs: i, figures };
  });
}

/** A wireguard-go answer taking longer than this is left out (no handshake age). */
const UAPI_TIMEOUT_MS = 500;

/**
 * Milliseconds since the latest handshake of a tunnel device (as `tunnelOf(id).device`
 * describes it), undefined when not known: not WireGuard, no handshake yet, or kernel
 * WireGuard (its counters need a genetlink GET_DEVICE the agent does not make).
 */
export async function handshakeAgeMs(device: Record<string, unknown> | undefined, now: number): Promise<number | undefined> {
  if (device?.['type'] !== 'WIREGUARD' || device['impl'] !== 'wireguard-go' || !device['device']) return undefined;
  const state = await uapiGet(uapiSocketPath(String(device['device'])), UAPI_TIMEOUT_MS).catch(() => undefined);
  const last = state?.peers[0]?.lastHandshake;
  return last ? Math.max(0, now - last.getTime()) : undefined;
}

/** What `nsm-agent status` shows of a connection's traffic (proto TrafficStatus). */
export interface TrafficView {
  side: 'client' | 'endpoint';
  rx_bytes: number;
  tx_bytes: number;
  rx_packets: number;
  tx_packets: number;
  handshake_age_ms: number;
}

/**
 * The traffic of each connection by its id: the counters of its interface at this host (the
 * client's if there is one, else the endpoint's end) as the interface counts them, and the
 * tunnel's handshake age.
 */
export async function readTrafficViews(
  conns: Connection[],
  interfacesOf: InterfacesOf,
  tunnelDevice: (id: string) => Record<string, unknown> | undefined,
  now: number,
): Promise<Map<string, TrafficView>> {
  const out = new Map<string, TrafficView>();
  const picked = conns.map((c) => {
    let ifs: ConnectionInterfaces = {};
    try {
      ifs = interfacesOf(c);
    } catch {
      // no interfaces to read
    }
    return ifs.server ? { side: 'client' as const, ref: ifs.server } : ifs.client ? { side: 'endpoint' as const, ref: ifs.client } : undefined;
  });
  const refs = picked.flatMap((p) => (p ? [p.ref] : []));
  const [stats, ages] = await Promise.all([readInterfaces(refs), Promise.all(conns.map((c) => handshakeAgeMs(tunnelDevice(c.id ?? ''), now)))]);
  let at = 0;
  conns.forEach((c, i) => {
    const p = picked[i];
    if (!p) return;
    const s = stats[at++];
    if (!s) return;
    out.set(c.id ?? '', { side: p.side, rx_bytes: s.rxBytes, tx_bytes: s.txBytes, rx_packets: s.rxPackets, tx_packets: s.txPackets, handshake_age_ms: Math.round(ages[i] ?? 0) });
  });
  return out;
}
