/**
 * The Prometheus exporter: the agent's metrics in a prom-client registry, served on `/metrics`.
 * Loaded only when agent.yaml has `metrics:` (src/agent/metrics/index.ts), so that an agent
 * without it never loads prom-client.
 *
 * Per-connection series are read at each scrape from the connections the agent has then, so a
 * closed connection's series are gone from the next scrape. The names of the traffic counters
 * are those of sdk-vpp's Prometheus exporter, so existing NSM dashboards work.
 */
import client from 'prom-client';
import type { Connection } from '../../api';
import { stateName } from '../../api';
import type { SideFigures } from '../../networkservice/stats';
import { ByteWriter, whole } from './bytes';
import { handshakeAgeMs, readFigures, type ConnectionInterfaces } from './traffic';
import type { MetricsSources, Observer, HealCause } from './types';

type TrafficLabels = Record<'connection_id' | 'network_service' | 'nsc' | 'nsc_interface' | 'nse_interface', string>;

/** `{k="v",...}` with the text format's escapes (backslash, double quote, newline). */
function labelText(labels: TrafficLabels): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(labels)) parts.push(`${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return `{${parts.join(',')}}`;
}

const FIGURES: [keyof SideFigures, string][] = [
  ['rxBytes', 'rx_bytes'],
  ['txBytes', 'tx_bytes'],
  ['rxPackets', 'rx_packets'],
  ['txPackets', 'tx_packets'],
  ['drops', 'drops'],
];

/** The ten traffic counters, in the order they are written: each side's five figures. */
const TRAFFIC = (['server', 'client'] as const).flatMap((side) =>
  FIGURES.map(([key, suffix]) => {
    const name = `${side}_${suffix}_total`;
    const what = suffix.split('_').join(' ');
    return {
      side,
      key,
      name: Buffer.from(name),
      header: Buffer.from(`# HELP ${name} ${side === 'server' ? 'Client' : 'Endpoint'}-side interface ${what} as the forwarder counts them (rx: from the interface's owner).\n# TYPE ${name} counter\n`),
    };
  }),
);

const NEWLINE = 0x0a;

/** A connection's traffic label set (`{...} ` as UTF-8) and the values it was made of (its id aside). */
interface KeptLabels {
  service: string;
  nsc: string;
  nscIf: string;
  nseIf: string;
  bytes: Buffer;
}

const REQUEST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const HEAL_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class Exporter implements Observer {
  readonly registry = new client.Registry();
  private readonly requests: client.Histogram<'endpoint' | 'mechanism'>;
  private readonly heals: client.Counter<'cause'>;
  private readonly healDuration: client.Histogram<'cause' | 'reselected'>;
  /** Reads the counters of `conns` and writes their series to `out` (set by trafficCounters). */
  private readTraffic!: (conns: readonly Connection[], out: ByteWriter) => Promise<void>;
  /** The size of the latest page, to size the next one's buffer. */
  private lastSize = 0;
  /** The buffer of a page that was sent (see recycle), for the next page to be written into. */
  private spare: Buffer | undefined;
  /** The connections of the scrape in progress (the latest one's), for the gauges' collect. */
  private scraped: readonly Connection[] = [];
  /** Each connection's traffic label set (`{...} `, UTF-8), by id, with what it was made of: kept while unchanged. */
  private labelsById = new Map<string, KeptLabels>();

  constructor(private readonly s: MetricsSources) {
    const registers = [this.registry];
    const scraped = () => this.scraped; // for the gauges' collect(), where `this` is the gauge
    client.collectDefaultMetrics({ register: this.registry, prefix: 'nsm_agent_' });
    this.requests = new client.Histogram({
      name: 'nsm_agent_request_duration_seconds',
      help: 'Duration of successful Requests at this agent, by where the endpoint is (local, remote) and the mechanism of the connection here.',
      labelNames: ['endpoint', 'mechanism'],
      buckets: REQUEST_BUCKETS,
      registers,
    });
    this.heals = new client.Counter({
      name: 'nsm_agent_heals_total',
      help: 'Heals of held connections started, by cause (liveness, monitor_break, connection_down).',
      labelNames: ['cause'],
      registers,
    });
    this.healDuration = new client.Histogram({
      name: 'nsm_agent_heal_duration_seconds',
      help: 'Time from the start of a heal to the connection working again, by cause and whether it reselected.',
      labelNames: ['cause', 'reselected'],
      buckets: HEAL_BUCKETS,
      registers,
    });
    this.trafficCounters(registers);
    const connections = new client.Gauge({
      name: 'nsm_agent_connections',
      help: 'Connections of this agent by state and mechanism.',
      labelNames: ['state', 'mechanism'],
      registers,
      collect() {
        this.reset();
        const counts = new Map<string, number>();
        for (const c of scraped()) {
          const key = `${stateName(c.state)}\0${c.mechanism?.type ?? ''}`;
          counts.set(key, (counts.get(key) ?? 0) + 1);
        }
        for (const [key, n] of counts) {
          const [state = '', mechanism = ''] = key.split('\0');
          connections.set({ state, mechanism }, n);
        }
      },
    });
    this.identityGauges(registers);
    if (s.registryHealth()) this.registryGauges(registers);
    this.vl3AndDns(registers);
  }

  /** vL3 members per endpoint, and the queries the agent's DNS servers answered. */
  private vl3AndDns(registers: client.Registry[]): void {
    const s = this.s;
    new client.Gauge({
      name: 'nsm_agent_vl3_members',
      help: 'Members (clients) of each vL3 endpoint this agent hosts.',
      labelNames: ['endpoint'],
      registers,
      collect() {
        this.reset();
        for (const [endpoint, n] of s.vl3Members()) this.set({ endpoint }, n);
      },
    });
    new client.Counter({
      name: 'nsm_agent_dns_answers_total',
      help: 'DNS queries handled by the agent: server (resolver: in a client namespace; vl3: a vL3 endpoint\'s names) and the answer\'s response code (DROPPED: none sent).',
      labelNames: ['server', 'rcode'],
      registers,
      collect() {
        this.reset();
        for (const e of s.dnsAnswers()) this.inc({ server: e.server, rcode: e.rcode }, e.n);
      },
    });
  }

  requested(conn: Connection, seconds: number): void {
    this.requests.observe({ endpoint: this.s.tunnelOf(conn.id ?? '').mechanism ? 'remote' : 'local', mechanism: conn.mechanism?.type ?? '' }, seconds);
  }

  healStarted(cause: HealCause): void {
    this.heals.inc({ cause });
  }

  healRecovered(cause: HealCause, reselected: boolean, seconds: number): void {
    this.healDuration.observe({ cause, reselected: String(reselected) }, seconds);
  }

  /** The Prometheus text of every metric, the per-connection ones read from the kernel now, as UTF-8: what `/metrics` serves. */
  async page(): Promise<Buffer> {
    const conns = this.s.connections();
    this.scraped = conns;
    const out = new ByteWriter(this.lastSize + 64 * 1024, this.spare);
    this.spare = undefined;
    await this.readTraffic(conns, out);
    out.text(await this.registry.metrics());
    this.lastSize = out.length;
    return out.done();
  }

  /**
   * Takes back a page once it is sent and no longer referenced, for the next page to be written
   * into: a page of a thousand connections is over a megabyte, and a new one per scrape would
   * make the garbage collector sweep the whole heap every few scrapes.
   */
  recycle(page: Buffer): void {
    this.spare = whole(page);
  }

  /** {@link page} as a string. */
  async metrics(): Promise<string> {
    return (await this.page()).toString();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private trafficCounters(registers: client.Registry[]): void {
    const s = this.s;
    const handshake = new client.Gauge({
      name: 'nsm_agent_wireguard_handshake_age_seconds',
      help: "Seconds since the latest WireGuard handshake of a connection's tunnel (wireguard-go devices).",
      labelNames: ['connection_id'],
      registers,
    });
    // prom-client collects metrics concurrently, so the reading is done before it starts:
    // every connection's counters at once (once per namespace) for all ten counters. The ten
    // counters' text is written here rather than by prom-client, whose cost per series (a
    // labels object hashed for each) would make a scrape of a thousand connections slow; a
    // connection's label text is made once and kept while its labels stay the same.
    this.readTraffic = async (conns, out) => {
      handshake.reset();
      const read = await readFigures(conns, s.interfacesOf);
      const labels: (Buffer | undefined)[] = [];
      const labelsById = new Map<string, KeptLabels>();
      conns.forEach((conn, i) => {
        const r = read[i];
        if (r && (r.figures.server || r.figures.client)) labels[i] = this.trafficLabels(conn, r.ifs, labelsById);
      });
      this.labelsById = labelsById;
      for (const t of TRAFFIC) {
        out.bytes(t.header);
        conns.forEach((_, i) => {
          const f = read[i]?.figures[t.side];
          const l = labels[i];
          if (f && l) out.bytes(t.name).bytes(l).number(f[t.key]).byte(NEWLINE);
        });
        out.byte(NEWLINE);
      }
      const now = s.now();
      const tunnels: [string, Record<string, unknown>][] = [];
      for (const conn of conns) {
        const device = s.tunnelOf(conn.id ?? '').device;
        if (device?.['type'] === 'WIREGUARD') tunnels.push([conn.id ?? '', device]);
      }
      await Promise.all(
        tunnels.map(async ([id, device]) => {
          const ms = await handshakeAgeMs(device, now);
          if (ms !== undefined) handshake.set({ connection_id: id }, ms / 1000);
        }),
      );
    };
  }

  /** The label set of a connection's traffic series (`{...} `): the kept one if its labels are unchanged; recorded in `keep`. */
  private trafficLabels(conn: Connection, ifs: ConnectionInterfaces, keep: Map<string, KeptLabels>): Buffer {
    const id = conn.id ?? '';
    const service = conn.network_service ?? '';
    const nsc = conn.path?.path_segments?.[0]?.name ?? '';
    const nscIf = ifs.server?.ifname ?? '';
    const nseIf = ifs.client?.ifname ?? '';
    let entry = this.labelsById.get(id);
    if (entry === undefined || entry.service !== service || entry.nsc !== nsc || entry.nscIf !== nscIf || entry.nseIf !== nseIf) {
      const text = labelText({ connection_id: id, network_service: service, nsc, nsc_interface: nscIf, nse_interface: nseIf });
      entry = { service, nsc, nscIf, nseIf, bytes: Buffer.from(`${text} `) };
    }
    keep.set(id, entry);
    return entry.bytes;
  }


  private identityGauges(registers: client.Registry[]): void {
    const s = this.s;
    const svid = new client.Gauge({
      name: 'nsm_agent_svid_expiry_timestamp_seconds',
      help: "When the agent's X.509 SVID expires (Unix time).",
      registers,
      collect() {
        this.reset();
        const at = s.svidExpiresAt();
        if (at !== undefined) svid.set(at / 1000);
      },
    });
    const bundle = new client.Gauge({
      name: 'nsm_agent_bundle_expiry_timestamp_seconds',
      help: 'When the first authority of a trust bundle expires (Unix time), by trust domain.',
      labelNames: ['trust_domain'],
      registers,
      collect() {
        this.reset();
        for (const [td, at] of s.bundleExpiries()) bundle.set({ trust_domain: td }, at / 1000);
      },
    });
  }

  private registryGauges(registers: client.Registry[]): void {
    const s = this.s;
    const reachable = new client.Gauge({
      name: 'nsm_agent_registry_reachable',
      help: 'Whether the remote registry answered the latest call (1) or not (0) (none yet: 0).',
      registers,
      collect() {
        this.reset();
        reachable.set(s.registryHealth()?.state === 'reachable' ? 1 : 0);
      },
    });
    const failures = new client.Counter({
      name: 'nsm_agent_registry_failures_total',
      help: 'Calls to the remote registry (registrations, refreshes, finds) that could not reach it.',
      registers,
      collect() {
        this.reset();
        const h = s.registryHealth();
        if (h) failures.inc(h.failures);
      },
    });
  }
}
