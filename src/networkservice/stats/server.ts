/**
 * stats server: times each Request and fills this hop's path segment `metrics` map with the
 * traffic figures of the connection's interfaces, as sdk-vpp's stats element does for the VPP
 * forwarder (keys `server_rx_bytes`, `client_tx_packets`, ... `server_drops`), so that whoever
 * asked (an NSC, another agent, an upstream nsmgr) sees them in the returned connection.
 *
 * Figures are read only on a connection's later Requests (refreshes, heals): its first
 * Request makes the interfaces, so there is nothing to count yet and the kernel is not asked.
 *
 * Placement: right after updatepath (this hop's id and path index are set), so the timing
 * covers the rest of the chain.
 */
import type { Connection } from '../../api';
import { NetworkServiceServer, nextServer } from '../../core/networkservice';

/** Traffic of one side, as the forwarder counts it (rx: what came from that side's interface). */
export interface SideFigures {
  rxBytes: number;
  txBytes: number;
  rxPackets: number;
  txPackets: number;
  drops: number;
}

export interface ConnectionFigures {
  /** The client side (the NSC's interface). */
  server?: SideFigures;
  /** The endpoint side (the NSE's interface), where this host has one of its own. */
  client?: SideFigures;
}

export interface StatsOptions {
  /** Reads the figures of a connection (by this hop's id and the connection as returned). */
  figures(conn: Connection): Promise<ConnectionFigures>;
  /** Called after each successful Request with its duration in seconds. */
  requested?(conn: Connection, seconds: number): void;
  /** Whether the connection (this hop's id) was established before this Request. */
  known(id: string): boolean;
  now?: () => number;
}

/** The segment metrics map entries of one side (`server` or `client`), as decimal strings. */
export function segmentEntries(prefix: 'server' | 'client', f: SideFigures): Record<string, string> {
  return {
    [`${prefix}_rx_bytes`]: String(f.rxBytes),
    [`${prefix}_tx_bytes`]: String(f.txBytes),
    [`${prefix}_rx_packets`]: String(f.rxPackets),
    [`${prefix}_tx_packets`]: String(f.txPackets),
    [`${prefix}_drops`]: String(f.drops),
  };
}

export function statsServer(opts: StatsOptions): NetworkServiceServer {
  const now = opts.now ?? (() => performance.now());
  return {
    async request(ctx, req) {
      const started = now();
      const again = opts.known(req.connection?.id ?? '');
      const conn = await nextServer(ctx).request(ctx, req);
      const figures: ConnectionFigures = again ? await opts.figures(conn).catch(() => ({})) : {};
      const seg = conn.path?.path_segments?.[conn.path.index ?? 0];
      if (seg && (figures.server || figures.client)) {
        seg.metrics = {
          ...(seg.metrics ?? {}),
          ...(figures.server ? segmentEntries('server', figures.server) : {}),
          ...(figures.client ? segmentEntries('client', figures.client) : {}),
        };
      } else if (seg) {
        seg.metrics ??= {};
      }
      opts.requested?.(conn, (now() - started) / 1000);
      return conn;
    },
    close: (ctx, conn) => nextServer(ctx).close(ctx, conn),
  };
}
