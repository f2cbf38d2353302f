/**
 * The traffic figures of connections: which interfaces a connection has at this host, and their
 * kernel counters read through src/sys (one RTM_GETLINK dump per namespace). Shared by the
 * stats element (path segment metrics), the Prometheus exporter and `nsm-agent status`.
 */
import type { Connection } from '../../api';
import * as sys from '../../sys';
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

/** The counters of each interface (undefined where the namespace or the link is gone), in order. */
export async function readInterfaces(refs: InterfaceRef[]): Promise<(sys.LinkStats | undefined)[]> {
  const byNs = new Map<string, { ns: sys.Netns | string; links?: Map<string, sys.LinkStats> }>();
  for (const r of refs) {
    try {
      const key = keyOf(r.netns);
      if (!byNs.has(key)) byNs.set(key, { ns: r.netns });
    } catch {
      // a malformed namespace name: nothing to read
    }
  }
  await Promise.all(
    [...byNs.values()].map(async (entry) => {
      let opened: sys.Netns | undefined;
      try {
        const ns = typeof entry.ns === 'string' ? (opened = sys.openNetns(entry.ns)) : entry.ns;
        entry.links = await sys.listLinkStats(sys.Rtnl.for(ns));
      } catch {
        // the namespace is gone (or not ours to read): its interfaces have no figures
      } finally {
        opened?.close();
      }
    }),
  );
  return refs.map((r) => {
    try {
      return byNs.get(keyOf(r.netns))?.links?.get(r.ifname);
    } catch {
      return undefined;
    }
  });
}

/** The figures of each connection's sides, in order. */
export async function readFigures(conns: Connection[], interfacesOf: InterfacesOf): Promise<{ ifs: ConnectionInterfaces; figures: ConnectionFigures }[]> {
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
