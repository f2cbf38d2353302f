/**
 * The agent: one process that is the local NSM manager and forwarder, the client for
 * connections the host asks for, the host of configured endpoints, and (embedded) a registry.
 *
 *   server chain:  updatepath → begin → updatetoken → metadata → timeout → monitor → trimpath
 *                  → clientinfo → mechanisms{KERNEL, WIREGUARD, VXLAN} → discover → roundrobin
 *                  → connect
 *   connect:       hosted endpoint chain in-process (by endpoint name), or the remote chain:
 *                  mechanismtranslation → tunnel clients {WIREGUARD, VXLAN} → downstream monitor
 *                  → authorize → dial (gRPC)
 *   held conns:    updatepath → begin → metadata → refresh → heal → updatetoken → server chain
 *                  (in-process; heal watches this agent's own monitor hub and pings)
 *
 * State: the elements record what they make in <stateDir>/state (src/agent/state); a restarted
 * agent asks for its held connections again and takes back what the kernel still has.
 *
 * Listeners: the unix socket (NSM APIs, registry, control API for the CLI); with `listen.tcp`,
 * the NSM APIs for other hosts; with an embedded registry on a networked agent, the registry
 * on TCP (`registry.listen`, default port 5002).
 */
import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { SERVER_OPTIONS, stateName, type Connection, type Mechanism } from '../api';
import { toTimestamp } from '../api/time';
import { Clock, realClock } from '../core/clock';
import { Ctx } from '../core/ctx';
import { AgentError } from '../core/errors';
import { Logger, silentLogger } from '../core/log';
import { chainClient, chainServer, serverToClient, NetworkServiceClient, NetworkServiceServer } from '../core/networkservice';
import { chainNseRegistry } from '../core/registry';
import { nseQueryCache, nsQueryCache } from '../registry/querycache';
import { updatePathClient, updatePathServer } from '../networkservice/updatepath';
import { beginClient, beginServer } from '../networkservice/begin';
import { metadataClient, metadataServer } from '../networkservice/metadata';
import { timeoutServer } from '../networkservice/timeout';
import { refreshClient } from '../networkservice/refresh';
import { MonitorHub, monitorServer, monitorDownstreamClient } from '../networkservice/monitor';
import { healClient, kernelLivenessCheck } from '../networkservice/heal';
import { trimPathServer } from '../networkservice/trimpath';
import { clientInfoServer } from '../networkservice/clientinfo';
import { mechanismsServer } from '../networkservice/mechanisms';
import { discoverServer } from '../networkservice/discover';
import { roundRobinServer } from '../networkservice/roundrobin';
import { parseNsURL } from '../networkservice/nsurl';
import { connectServer } from '../networkservice/connect';
import { updateTokenClient, updateTokenServer } from '../networkservice/updatetoken';
import type { TokenSource } from '../core/token';
import { authorizeClient, authorizeServer, ServicePolicy } from '../networkservice/authorize';
import { createX509Source, waitForIdentity, channelCredentials, listenMtls, SpiffeTokenSource, type X509Source, type MtlsListener } from '../spire';
import { mechanismTranslationClient } from '../networkservice/mechanismtranslation';
import { kernelReaper, kernelServer } from '../mechanisms/kernel/server';
import { kernelMechanism, kernelSide } from '../mechanisms/kernel/params';
import { tunnelClient, TunnelClient } from '../mechanisms/tunnel/client';
import { tunnelServer, TunnelServer } from '../mechanisms/tunnel/server';
import type { Underlay } from '../mechanisms/tunnel/params';
import { wireguardDataplane, wireguardReaper } from '../mechanisms/wireguard/dataplane';
import { RESERVED_PORTS_SYSCTL, reservedPortsWith, UdpPortAllocator } from '../mechanisms/wireguard/ports';
import { kernelWireguardSupported } from '../mechanisms/wireguard/kernel';
import { vxlanDataplane, vxlanReaper } from '../mechanisms/vxlan/dataplane';
import { newRegistryServer, RegistryServer } from '../registry/server';
import { EtcdStore } from '../registry/store/etcd';
import { addRegistryServices, REGISTRY_SERVICE_NAMES } from '../registry/grpc';
import { grpcNseRegistry, grpcNsRegistry, newRegistryClients, refreshNseClient } from '../registry/client';
import type { NsRegistry, NseRegistry } from '../core/registry';
import * as sys from '../sys';
import type { AgentConfig, EndpointConfig } from './config';
import { HostedEndpoint, hostEndpoint, registerEndpoint, registerServices } from './endpoints';
import { addMonitor, addNetworkService } from './grpc/networkservice';
import { addControl } from './grpc/control';
import { HealthService } from './grpc/health';
import { VERSION } from './version';
import { listenLocal, LocalSocket } from './local-socket';
import { ChannelPool, dialClient } from './grpc/dial';
import { resolveUnderlay } from './underlay';
import { StateStore } from './state/store';
import { scopedRecords, noRecords, type Records } from '../core/records';
import type { IpamRecord } from '../networkservice/ipam/server';

export interface HeldConnection {
  conn: Connection;
  created: number;
  netns: string;
  ifname: string;
  /** The nsm:// URL it was asked with. */
  url: string;
  /** What was last written to its record (see followHeld). */
  recorded?: string;
}

/** A held connection as recorded in the state directory, to be asked for again after a restart. */
interface HeldRecord {
  url: string;
  netns: string;
  ifname: string;
  created: number;
  /** The connection as last seen by the client: same ids and path, mechanism, addresses. */
  conn: Connection;
}

/**
 * Back-off of heal re-requests: a next hop that comes back is found within HEAL_RETRY_MAX_MS
 * (the issue asks for recovery under 1 s after a remote agent restarts).
 */
const HEAL_RETRY_MIN_MS = 100;
const HEAL_RETRY_MAX_MS = 400;
/** Back-off of held connections that could not be (re-)established. */
const HELD_RETRY_MIN_MS = 200;
const HELD_RETRY_MAX_MS = 5_000;

export interface AgentOptions {
  clock?: Clock;
  log?: Logger;
}

const CONNECT_TIMEOUT_MS = 15_000;
/**
 * Held connections requested (or closed) at once beyond this wait for their turn. The agent
 * has one thread: 1,000 connects at once take as long one after another, but all at once
 * each keeps its whole chain of suspended calls, Ctxs and request copies alive until the
 * last is done (about 55 KiB each; 55 MiB of heap, promoted to the old generation, at 1,000).
 */
const MAX_CONCURRENT_CONNECTS = 64;

/** Runs at most `n` functions at once; the others start in call order as those finish. */
class Limiter {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly n: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running < this.n) this.running++;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
/** How long start() waits for a SPIFFE identity before giving up with the reason. */
const IDENTITY_WAIT_MS = 30_000;
const NETWORK_SERVICE_NAMES = ['networkservice.NetworkService', 'connection.MonitorConnection'];

/** The host of a `host:port` listen address ('' for an unspecified host). */
function listenHost(addr: string): string {
  const host = addr.slice(0, addr.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  return host === '0.0.0.0' || host === '::' ? '' : host;
}

function listenPort(addr: string): string {
  return addr.slice(addr.lastIndexOf(':') + 1);
}

function bracket(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** The registry as the agent uses it: embedded (served from memory or etcd) or a remote one. */
interface RegistryAccess {
  ns: NsRegistry;
  nse: NseRegistry;
  /** The embedded registry's server, when embedded. */
  embedded?: RegistryServer;
  close(): void;
}

export class Agent {
  readonly clock: Clock;
  readonly log: Logger;
  readonly hub = new MonitorHub();
  readonly reg: RegistryAccess;
  readonly endpoints = new Map<string, HostedEndpoint>();
  readonly held = new Map<string, HeldConnection>();
  readonly started: number;
  readonly tokens: TokenSource;
  /** The agent's SPIFFE identity: mTLS on every TCP listener and dial, and the key that signs tokens. */
  readonly identity: X509Source;
  private readonly mtls: MtlsListener[] = [];
  /** The server chain; built by start() (the tunnel mechanisms need the underlay). */
  server!: NetworkServiceServer;
  /** Where other hosts reach this agent's tunnels; undefined when it has no underlay. */
  underlay: Underlay | undefined;
  private kernel!: ReturnType<typeof kernelServer>;
  private client!: NetworkServiceClient;
  /** The state directory's records (opened by start()). */
  private store: StateStore | undefined;
  private heldRecords: Records<HeldRecord> = noRecords();
  private ipamRecords: Records<IpamRecord> = noRecords();
  /** Held connections being retried in the background, by id (cancel functions). */
  private readonly retrying = new Map<string, { url: string; netns: string; cancel: () => void }>();
  /** Held connections' requests and closes in progress (MAX_CONCURRENT_CONNECTS). */
  private readonly connects = new Limiter(MAX_CONCURRENT_CONNECTS);
  private readonly nseRegistrar: NseRegistry;
  private readonly life = new AbortController();
  private readonly servers: grpc.Server[] = [];
  private localSocket: LocalSocket | undefined;
  private readonly health = new HealthService();
  private readonly pool: ChannelPool;
  private readonly tunnels: { clients: TunnelClient[]; servers: TunnelServer[] } = { clients: [], servers: [] };
  private readonly translation = mechanismTranslationClient();
  private readonly dataplanes: { close?(): Promise<void> }[] = [];
  /** The URL registered for hosted endpoints: the TCP listener when there is one. */
  private url: string;
  private readonly listening: string[] = [];

  constructor(readonly cfg: AgentConfig, opts: AgentOptions = {}) {
    this.clock = opts.clock ?? realClock;
    this.log = opts.log ?? silentLogger;
    this.started = this.clock.now();
    setMaxListeners(0, this.life.signal); // every call in flight listens to the agent's lifetime
    this.identity = createX509Source(cfg.identity, { name: cfg.name, log: this.log, clock: this.clock });
    this.tokens = new SpiffeTokenSource(this.identity, cfg.maxTokenLifetimeMs);
    this.pool = new ChannelPool({ credentials: (url) => (url.protocol === 'tcp:' ? channelCredentials(this.identity, { tokens: this.tokens }) : undefined) });
    this.url = `unix://${cfg.listen.unix}`;
    this.reg = this.openRegistry();
    this.nseRegistrar = chainNseRegistry(
      refreshNseClient({
        heal: !this.reg.embedded,
        signal: this.life.signal,
        // A registry that lost this endpoint (restarted) lost its services too.
        beforeHeal: async (ctx, nse) => {
          const ep = this.endpoints.get(nse.name ?? '');
          if (ep) await registerServices(ctx, ep, this.reg.ns);
        },
      }),
      this.reg.nse,
    );
  }

  private openRegistry(): RegistryAccess {
    const { registry } = this.cfg;
    if (registry.url === 'embedded') {
      const store = registry.store === 'etcd' ? new EtcdStore({ endpoints: registry.etcd }) : undefined;
      const embedded = newRegistryServer({
        clock: this.clock,
        log: this.log,
        defaultExpiration: registry.expirationMs,
        store,
        authorize: { self: () => this.selfId() },
      });
      return {
        ns: embedded.ns,
        nse: embedded.nse,
        embedded,
        close: () => {
          embedded.close();
          if (embedded.store instanceof EtcdStore) embedded.store.close();
        },
      };
    }
    const u = new URL(registry.url);
    const target = u.protocol === 'unix:' ? `unix://${u.pathname}` : u.host;
    const creds = u.protocol === 'tcp:' ? channelCredentials(this.identity, { tokens: this.tokens }).credentials : grpc.credentials.createInsecure();
    const clients = newRegistryClients(target, creds);
    // discover's finds answered from memory, kept current by watches (see querycache.ts)
    const cache = { clock: this.clock, log: this.log };
    const ns = nsQueryCache(grpcNsRegistry(clients.ns), cache);
    const nse = nseQueryCache(grpcNseRegistry(clients.nse), cache);
    return {
      ns,
      nse,
      close: () => {
        ns.close();
        nse.close();
        clients.close();
      },
    };
  }

  /** A Ctx for background work: the agent's clock, logger and lifetime. */
  ctx(): Ctx {
    return Ctx.background({ clock: this.clock, log: this.log, signal: this.life.signal });
  }

  /** True when other hosts can reach this agent: it listens on TCP. */
  get networked(): boolean {
    return !!this.cfg.listen.tcp;
  }

  /** Kernel WireGuard when the kernel has it (or agent.yaml asks for it), else wireguard-go. */
  private wireguardKernel = false;

  private async prepareUnderlay(): Promise<void> {
    const impl = this.cfg.wireguard.implementation;
    const kernelHas = impl === 'wireguard-go' ? false : await kernelWireguardSupported();
    if (impl === 'kernel' && !kernelHas) {
      throw new AgentError('FAILED_PRECONDITION', `${this.cfg.file}: wireguard.implementation: kernel, but this kernel has no WireGuard`);
    }
    this.wireguardKernel = kernelHas;
    if (!kernelHas) this.checkInotifyLimit();
    const explicit = this.cfg.tunnelIP !== 'auto';
    try {
      this.underlay = await resolveUnderlay(this.cfg.tunnelIP);
      this.reserveWireguardPorts();
    } catch (err) {
      if (explicit || this.networked) throw err;
      this.log.info('no underlay: remote mechanisms are off', { reason: AgentError.from(err).message });
    }
  }

  /**
   * Each wireguard-go takes one inotify instance (its UAPI listener), and the kernel allows
   * fs.inotify.max_user_instances per user (128 by default): beyond that, WireGuard vWires
   * fail with "too many open files". Said once at start, with the fix.
   */
  private checkInotifyLimit(): void {
    try {
      const limit = Number(sys.getSysctl(sys.hostNetns(), 'fs.inotify.max_user_instances'));
      const wanted = this.cfg.wireguard.portMax - this.cfg.wireguard.portMin + 1 + this.cfg.wireguard.spares;
      if (limit < wanted) {
        this.log.warn('fs.inotify.max_user_instances limits wireguard-go vWires (one instance each); raise it with sysctl', {
          limit,
          wireguardPorts: wanted,
        });
      }
    } catch {
      /* no /proc/sys here: nothing to say */
    }
  }

  /**
   * Takes the WireGuard port range out of the kernel's ephemeral ports in the agent's namespace,
   * where the devices' sockets are. A spare's port is set ahead and bound only when the spare is
   * raised for a connection; another program's outgoing UDP socket that took the port meanwhile
   * would leave that device without a socket (the allocator's probe cannot see the future).
   * Added to what is reserved already and kept after the agent stops (reserving takes nothing
   * from anyone: explicit binds to these ports still work). Not fatal where /proc/sys is read-only.
   */
  private reserveWireguardPorts(): void {
    const { portMin, portMax } = this.cfg.wireguard;
    try {
      const ns = sys.hostNetns();
      const wanted = reservedPortsWith(sys.getSysctl(ns, RESERVED_PORTS_SYSCTL), portMin, portMax);
      if (wanted === undefined) return;
      sys.setSysctl(ns, RESERVED_PORTS_SYSCTL, wanted);
      this.log.info('WireGuard ports reserved from the ephemeral range', { sysctl: RESERVED_PORTS_SYSCTL, ports: `${portMin}-${portMax}` });
    } catch (err) {
      this.log.warn('cannot reserve the WireGuard ports from the ephemeral range; another program may take a spare\'s port', {
        sysctl: RESERVED_PORTS_SYSCTL,
        error: err,
      });
    }
  }

  private buildChains(): void {
    const cfg = this.cfg;
    const store = this.store;
    this.kernel = kernelServer(store ? { records: store.records('veth', kernelReaper) } : {});
    const handlers: Record<string, NetworkServiceServer> = { KERNEL: this.kernel };
    let remote: NetworkServiceClient | undefined;
    if (this.underlay) {
      const underlay = this.underlay;
      const ports = new UdpPortAllocator({ min: cfg.wireguard.portMin, max: cfg.wireguard.portMax, host: underlay.ip });
      const wg = wireguardDataplane({
        underlay,
        ports,
        log: this.log,
        kernel: this.wireguardKernel,
        spares: cfg.wireguard.spares,
        ...(store ? { records: store.records('wireguard', wireguardReaper) } : {}),
      });
      const vx = vxlanDataplane({ underlay, ...(store ? { records: store.records('vxlan', vxlanReaper) } : {}) });
      const wgServer = tunnelServer(wg, { underlay });
      const vxServer = tunnelServer(vx, { underlay });
      const wgClient = tunnelClient(wg, { underlay });
      const vxClient = tunnelClient(vx, { underlay });
      this.dataplanes.push(wg, vx);
      this.tunnels.servers.push(wgServer, vxServer);
      this.tunnels.clients.push(wgClient, vxClient);
      handlers['WIREGUARD'] = wgServer;
      handlers['VXLAN'] = vxServer;
      // A broken monitor stream to the next host, or its DOWN/DELETE, is DOWN here too: the
      // heal of whoever holds the connection (held connections, local NSCs) takes it from there.
      const downstream = monitorDownstreamClient({
        monitor: (_ctx, url, selector, onEvent, onError) => this.pool.monitor(url, selector, onEvent, onError),
        onDown: (id, why) => {
          const known = this.hub.get(id);
          if (!known) return;
          this.log.warn('next hop reports the connection down', { id, why });
          this.hub.update({ ...known, state: 'DOWN' });
        },
      });
      remote = chainClient(this.translation, wgClient, vxClient, downstream, authorizeClient({ self: () => this.selfId() }), dialClient(this.pool));
    }
    this.server = chainServer(
      updatePathServer(cfg.name, { requireConnectionId: true }),
      beginServer(),
      updateTokenServer(this.tokens, { trustLocalCallers: true, self: () => this.selfId() }),
      authorizeServer({ servicePolicy: new ServicePolicy(cfg.policy), self: () => this.selfId() }),
      metadataServer(),
      timeoutServer(),
      monitorServer(this.hub),
      trimPathServer(),
      clientInfoServer({ nodeName: cfg.name }),
      mechanismsServer(handlers),
      discoverServer(this.reg.ns, this.reg.nse),
      roundRobinServer(),
      connectServer({ local: (name) => this.endpoints.get(name)?.chain, remote }),
    );
    // Held connections heal as NSM's NSC does: the monitor stream is this agent's own hub (the
    // next hop is in-process), the data-plane check pings from the client's namespace.
    const heal = healClient({
      monitor: (_ctx, selector, onEvent) => this.hub.subscribe(selector, onEvent),
      ...(cfg.heal.livenessIntervalMs > 0
        ? {
            liveness: this.livenessCheck(),
            // Each connection every livenessInterval, but at most maxChecksPerSecond periodic
            // checks in all: a host holding many connections checks each less often.
            livenessIntervalMs: () => Math.max(cfg.heal.livenessIntervalMs, (1000 * this.held.size) / cfg.heal.maxChecksPerSecond),
          }
        : {}),
      retry: { initialMs: HEAL_RETRY_MIN_MS, maxMs: HEAL_RETRY_MAX_MS },
    });
    this.client = chainClient(
      updatePathClient(`${cfg.name}-nsc`),
      beginClient(),
      metadataClient(),
      refreshClient(),
      heal,
      updateTokenClient(this.tokens),
      serverToClient(this.server),
    );
  }

  /**
   * The data-plane check of held connections: ICMP from each source to each destination
   * address in the client's namespace. A failure is confirmed by a second check one interval
   * later before it counts: a wireguard-go that its supervisor is restarting (about 100 ms), or
   * an echo lost on a saturated link, must not cost a reselect, which makes a new vWire.
   */
  private livenessCheck(): (conn: Connection) => Promise<boolean> {
    const check = kernelLivenessCheck({
      netnsOf: (conn) => (conn.mechanism?.type === 'KERNEL' ? kernelSide(conn.mechanism).netns : undefined),
      timeoutMs: this.cfg.heal.livenessTimeoutMs,
      log: this.log,
    });
    return async (conn) => {
      if (await check(conn)) return true;
      await new Promise((r) => setTimeout(r, this.cfg.heal.livenessIntervalMs));
      return check(conn);
    };
  }

  /** This agent's SPIFFE ID (undefined until the identity is loaded). */
  selfId(): string | undefined {
    try {
      return this.identity.svid().id;
    } catch {
      return undefined;
    }
  }

  /** Serves `server` on host:port with mutual TLS: the current SVID, peers verified per trust domain. */
  private async listenTcp(server: grpc.Server, addr: string): Promise<void> {
    const l = await listenMtls(server, addr, this.identity, { log: this.log });
    this.mtls.push(l);
    this.servers.push(server);
    this.listening.push(`tcp://${addr}`);
  }

  async start(): Promise<void> {
    await waitForIdentity(this.identity, IDENTITY_WAIT_MS);
    this.log.info('identity loaded', { id: this.selfId(), source: this.identity.kind });
    this.openState();
    await this.prepareUnderlay();
    this.buildChains();
    const cfg = this.cfg;
    const base = () => this.ctx();

    const local = new grpc.Server(SERVER_OPTIONS);
    addNetworkService(local, this.server, base);
    addMonitor(local, this.hub);
    addRegistryServices(local, { ns: this.reg.ns, nse: this.reg.nse }, this.ctx());
    addControl(local, this, base);
    this.health.addTo(local);
    this.servers.push(local);
    this.localSocket = await listenLocal(local, cfg.listen.unix, { allowUids: cfg.listen.allowUids, log: this.log });
    this.listening.push(`unix://${cfg.listen.unix}`);

    if (cfg.listen.tcp) {
      const host = listenHost(cfg.listen.tcp) || this.underlay?.ip;
      if (host) this.url = `tcp://${bracket(host)}:${listenPort(cfg.listen.tcp)}`;
    }
    // Endpoints are registered before other hosts can reach this agent: after a restart, their
    // clients' heals re-request at once, and must find the endpoints (discover) already back.
    for (const e of cfg.endpoints) {
      this.endpoints.set(e.name, this.newEndpoint(e));
    }
    for (const ep of this.endpoints.values()) {
      await registerEndpoint(this.ctx(), ep, { ns: this.reg.ns, nse: this.nseRegistrar });
      this.log.info('endpoint registered', { endpoint: ep.cfg.name, services: ep.cfg.services.join(','), url: this.url });
    }
    // Address reservations of endpoints the configuration no longer has are released when due.
    this.store?.records<IpamRecord>('ipam', {
      expiresOf: (r) => r.expires,
      reap: async (key) => {
        const cut = key.indexOf('/');
        this.endpoints.get(key.slice(0, cut))?.pool.release(key.slice(cut + 1));
      },
    });

    if (cfg.listen.tcp) {
      const tcp = new grpc.Server(SERVER_OPTIONS);
      addNetworkService(tcp, this.server, base);
      addMonitor(tcp, this.hub);
      this.health.addTo(tcp);
      await this.listenTcp(tcp, cfg.listen.tcp);
    }
    if (this.reg.embedded && (cfg.registry.listen || cfg.listen.tcp)) {
      const addr = cfg.registry.listen ?? `${cfg.listen.tcp!.slice(0, cfg.listen.tcp!.lastIndexOf(':'))}:5002`;
      const reg = new grpc.Server(SERVER_OPTIONS);
      addRegistryServices(reg, { ns: this.reg.ns, nse: this.reg.nse }, this.ctx());
      this.health.addTo(reg);
      await this.listenTcp(reg, addr);
    }

    // Serving: endpoints registered, listeners up (held connections follow).
    for (const s of [...NETWORK_SERVICE_NAMES, ...REGISTRY_SERVICE_NAMES, 'nsmagent.v1.Agent']) this.health.set(s, 'SERVING');

    for (const c of cfg.connections) {
      await this.connect(c.url, c.netns, c.id, { retry: true }).catch((err) =>
        this.log.error('configured connection failed', { url: c.url, error: err }),
      );
    }
    this.log.info('agent ready', { name: cfg.name, listen: this.listening.join(','), url: this.url, tunnelIP: this.underlay?.ip, version: VERSION });
  }

  /**
   * Asks again for the connections the previous run held that nothing has asked for since
   * start() (configured connections) or since (units restored by the daemon): connections made
   * with `nsm-agent connect`. Failures are retried in the background.
   */
  async resumeHeld(): Promise<void> {
    for (const [id, r] of this.heldRecords.leftovers()) {
      if (this.held.has(id) || this.retrying.has(id)) continue;
      await this.connect(r.url, r.netns, id, { retry: true }).catch((err) =>
        this.log.warn('connection of the previous run not re-established yet', { id, url: r.url, error: err }),
      );
    }
  }

  /**
   * Opens the state directory: the records a previous run left are read back (vWires to take
   * back, addresses to keep reserved, connections to ask for again) and those nobody needs any
   * more are reaped when due.
   */
  private openState(): void {
    const store = new StateStore(path.join(this.cfg.stateDir, 'state'), this.clock, this.log);
    this.store = store;
    this.heldRecords = store.records<HeldRecord>('held');
    this.ipamRecords = store.records<IpamRecord>('ipam');
    // Registered here too, so that records of a mechanism turned off since are still reaped.
    store.records('wireguard', wireguardReaper);
    store.records('vxlan', vxlanReaper);
    store.records('veth', kernelReaper);
    // Held connections follow their connection as the server chain last returned it (refresh,
    // heal, reselect), so that a restarted agent asks for the same one.
    this.hub.subscribe(null, (event) => {
      if (event.type !== 'UPDATE') return;
      for (const conn of Object.values(event.connections ?? {})) this.followHeld(conn);
    });
  }

  private followHeld(serverConn: Connection): void {
    const segs = serverConn.path?.path_segments ?? [];
    const id = segs[0]?.id ?? '';
    const held = this.held.get(id);
    if (!held || (serverConn.path?.index ?? 0) !== 1 || stateName(serverConn.state) !== 'UP') return;
    held.conn = { ...serverConn, id, path: { index: 0, path_segments: segs } };
    // A refresh changes only tokens and expiries, which a replay makes anew: no write then.
    const what = JSON.stringify([held.conn.network_service_endpoint_name, held.conn.mechanism, held.conn.context, segs.map((x) => [x.name, x.id])]);
    if (what === held.recorded) return;
    held.recorded = what;
    this.recordHeld(id, held);
  }

  private recordHeld(id: string, h: HeldConnection): void {
    this.heldRecords.put(id, { url: h.url, netns: h.netns, ifname: h.ifname, created: h.created, conn: h.conn });
  }

  private newEndpoint(e: EndpointConfig): HostedEndpoint {
    return hostEndpoint(e, {
      nodeName: this.cfg.name,
      url: this.url,
      tokens: this.tokens,
      ipamRecords: scopedRecords(this.ipamRecords, `${e.name}/`),
    });
  }

  /**
   * Requests a connection that the agent holds and refreshes until disconnect. The same id
   * asked for again with the same URL and namespace returns the held connection. A connection
   * the previous run held under this id is asked for as it was (same path, mechanism and
   * addresses), so its vWire is taken back rather than made again.
   * With `retry`, a failed request is retried in the background with back-off (the first
   * error is still thrown); without, nothing is kept.
   */
  async connect(url: string, netns: string, id?: string, opts: { retry?: boolean } = {}): Promise<HeldConnection> {
    const u = parseNsURL(url);
    if (u.mechanism !== 'KERNEL') throw new AgentError('UNSUPPORTED_MECHANISM', `mechanism ${u.mechanism} is not supported for local clients`);
    const nsPath = netns === 'host' ? '/proc/self/ns/net' : sys.netnsPath(netns);
    const connId = id || `${this.cfg.name}-${randomBytes(4).toString('hex')}`;
    const same = (h: { url: string; netns: string }) => h.url === url && h.netns === netns;
    const existing = this.held.get(connId);
    if (existing && same(existing)) return existing;
    const pending = this.retrying.get(connId);
    if (existing || (pending && !same(pending))) throw new AgentError('ALREADY_EXISTS', `connection ${connId} already exists`);
    if (pending) throw new AgentError('UNAVAILABLE', `connection ${connId} is being re-established`);
    const previous = this.heldRecords.claim(connId);
    const before = previous && same(previous) ? previous : undefined;
    const ifname = u.interfaceName ?? '';
    const attempt = (): Promise<HeldConnection> => this.connects.run(once);
    const once = async (): Promise<HeldConnection> => {
      const [ctx, done] = this.ctx().withTimeout(CONNECT_TIMEOUT_MS);
      try {
        const conn = await this.client.request(ctx, {
          connection: before
            ? { ...before.conn, state: 'UP' }
            : { id: connId, network_service: u.networkService, labels: u.labels, payload: '' },
          mechanism_preferences: [kernelMechanism({ netns: nsPath, ifname })],
        });
        const held: HeldConnection = {
          conn,
          created: before?.created ?? this.clock.now(),
          netns,
          ifname: conn.mechanism?.parameters?.['name'] ?? ifname,
          url,
        };
        this.held.set(connId, held);
        this.recordHeld(connId, held);
        this.log.info(before ? 'connection of the previous run re-established' : 'connected', {
          id: connId,
          service: u.networkService,
          endpoint: conn.network_service_endpoint_name,
        });
        return held;
      } finally {
        done();
      }
    };
    try {
      return await attempt();
    } catch (err) {
      if (!opts.retry) {
        if (previous) this.heldRecords.delete(connId);
        throw err;
      }
      if (!before) this.heldRecords.put(connId, { url, netns, ifname, created: this.clock.now(), conn: { id: connId, network_service: u.networkService, labels: u.labels } });
      this.retryHeld(connId, url, netns, attempt);
      throw err;
    }
  }

  /** Retries a held connection's request with back-off until it succeeds or is disconnected. */
  private retryHeld(id: string, url: string, netns: string, attempt: () => Promise<HeldConnection>): void {
    let delay = HELD_RETRY_MIN_MS;
    let stop = () => {};
    let cancelled = false;
    const entry = {
      url,
      netns,
      cancel: () => {
        cancelled = true;
        stop();
      },
    };
    this.retrying.set(id, entry);
    const again = () => {
      attempt().then(
        () => {
          if (this.retrying.get(id) === entry) this.retrying.delete(id);
        },
        (err) => {
          if (cancelled || this.life.signal.aborted) return;
          this.log.warn('connection not established yet, retrying', { id, inMs: delay, error: AgentError.from(err).message });
          stop = this.clock.after(delay, again);
          delay = Math.min(delay * 2, HELD_RETRY_MAX_MS);
        },
      );
    };
    stop = this.clock.after(delay, again);
  }

  /** Closes a held connection, or a client's connection by its id at any hop. */
  async disconnect(id: string): Promise<void> {
    const [ctx, done] = this.ctx().withTimeout(CONNECT_TIMEOUT_MS);
    try {
      const retry = this.retrying.get(id);
      if (retry) {
        retry.cancel();
        this.retrying.delete(id);
        this.heldRecords.delete(id);
        if (!this.held.has(id)) {
          this.log.info('disconnected', { id });
          return;
        }
      }
      const held = this.held.get(id);
      if (held) {
        this.held.delete(id);
        this.heldRecords.delete(id);
        // Its own deadline, from when its turn comes.
        await this.connects.run(async () => {
          const [closeCtx, closed] = this.ctx().withTimeout(CONNECT_TIMEOUT_MS);
          try {
            await this.client.close(closeCtx, held.conn);
          } finally {
            closed();
          }
        });
        this.log.info('disconnected', { id });
        return;
      }
      const conn = this.hub.connections().find((c) => c.id === id || c.path?.path_segments?.[0]?.id === id);
      if (!conn) throw new AgentError('NOT_FOUND', `no connection ${id}`);
      await this.server.close(ctx, conn);
      this.log.info('disconnected', { id });
    } finally {
      done();
    }
  }

  status() {
    const heldByAgentId = new Map<string, HeldConnection>();
    for (const h of this.held.values()) {
      const seg = h.conn.path?.path_segments?.[1];
      if (seg?.id) heldByAgentId.set(seg.id, h);
    }
    return {
      name: this.cfg.name,
      version: VERSION,
      started: toTimestamp(this.started),
      registry: this.cfg.registry.url === 'embedded' ? `embedded (${this.cfg.registry.store})` : this.cfg.registry.url,
      listen: [...this.listening],
      url: this.url,
      tunnel_ip: this.underlay?.ip ?? '',
      identity: `${this.selfId() ?? '(none yet)'} from ${this.identity.kind}`,
      endpoints: [...this.endpoints.values()].map((e) => ({
        name: e.cfg.name,
        services: e.cfg.services,
        cidr: e.cfg.cidr,
        netns: e.cfg.netns,
        url: e.registration.url ?? '',
        labels: e.cfg.labels,
        connections: e.pool.size,
      })),
      connections: this.hub.connections().map((conn) => {
        const held = heldByAgentId.get(conn.id ?? '');
        const params = conn.mechanism?.parameters ?? {};
        const tunnel = this.tunnelStatus(conn.id ?? '');
        const nsPath = params['inodeURL'] ? String(params['inodeURL']).replace(/^file:\/\//, '') : String(tunnel.device?.['netns'] ?? '');
        return {
          connection: { ...conn, state: stateName(conn.state) },
          origin: held ? 'agent' : 'client',
          created: held ? toTimestamp(held.created) : undefined,
          netns: held?.netns ?? nsPath.replace(/^\/run\/netns\//, ''),
          interface: params['name'] ?? String(tunnel.device?.['ifname'] ?? ''),
          ...(tunnel.mechanism || tunnel.device ? { remote: { mechanism: tunnel.mechanism ?? null, device: tunnel.device ? JSON.stringify(tunnel.device) : '' } } : {}),
        };
      }).concat(
        // Held connections not established (yet, or since a failed heal): DOWN, being retried.
        [...this.retrying].filter(([id]) => !this.held.has(id)).map(([id, r]) => ({
          connection: {
            id,
            network_service: parseNsURL(r.url).networkService,
            state: 'DOWN',
            path: { index: 0, path_segments: [{ id, name: `${this.cfg.name}-nsc` }] },
          } as Connection & { state: string },
          origin: 'agent',
          created: undefined,
          netns: r.netns,
          interface: parseNsURL(r.url).interfaceName ?? '',
        })),
      ),
    };
  }

  /** The tunnel of a connection: the mechanism the next hop chose, and the local device. */
  private tunnelStatus(id: string): { mechanism?: Mechanism; device?: Record<string, unknown> } {
    return {
      mechanism: this.translation.chosen(id),
      device: [...this.tunnels.clients, ...this.tunnels.servers].map((t) => t.describe(id)).find((d) => d !== undefined),
    };
  }

  /**
   * Hosts one more endpoint and registers it (kept registered until removeEndpoint or stop).
   * Used by reload and by systemd units that declare Provide= (src/agent/reload.ts).
   */
  async addEndpoint(cfg: EndpointConfig): Promise<HostedEndpoint> {
    if (this.endpoints.has(cfg.name)) throw new AgentError('ALREADY_EXISTS', `endpoint ${cfg.name} already exists`);
    const ep = this.newEndpoint(cfg);
    this.endpoints.set(cfg.name, ep);
    try {
      await registerEndpoint(this.ctx(), ep, { ns: this.reg.ns, nse: this.nseRegistrar });
    } catch (err) {
      this.endpoints.delete(cfg.name);
      throw err;
    }
    this.log.info('endpoint registered', { endpoint: cfg.name, services: cfg.services.join(',') });
    return ep;
  }

  /** Unregisters an endpoint and stops hosting it. Close its connections first. */
  async removeEndpoint(name: string): Promise<void> {
    const ep = this.endpoints.get(name);
    if (!ep) return;
    this.endpoints.delete(name);
    await this.nseRegistrar.unregister(this.ctx(), ep.registration);
    this.log.info('endpoint unregistered', { endpoint: name });
  }

  /**
   * Stops serving. With cleanup, closes every connection (removing its interfaces) and
   * unregisters the endpoints first. Without (the default of `nsm-agent run`), vWires,
   * wireguard-go processes and registrations stay as they are, recorded in the state directory,
   * for the next start to take back: a restart or upgrade does not interrupt traffic.
   */
  async stop(opts: { cleanup: boolean } = { cleanup: true }): Promise<void> {
    this.health.shutdown();
    for (const r of this.retrying.values()) r.cancel();
    if (opts.cleanup) {
      for (const id of [...this.held.keys(), ...this.retrying.keys()]) await this.disconnect(id).catch(() => {});
      for (const conn of this.hub.connections()) {
        const [ctx, done] = this.ctx().withTimeout(5_000);
        await this.server.close(ctx, conn).catch(() => {});
        done();
      }
      for (const ep of this.endpoints.values()) {
        await this.nseRegistrar.unregister(this.ctx(), ep.registration).catch(() => {});
      }
    }
    this.retrying.clear();
    await this.localSocket?.close();
    this.localSocket = undefined;
    await Promise.all(this.dataplanes.map((d) => d.close?.().catch(() => {})));
    await Promise.all(this.mtls.splice(0).map((l) => l.close().catch(() => {})));
    this.life.abort();
    await this.store?.close();
    this.reg.close();
    this.pool.close();
    this.identity.close();
    const servers = this.servers.splice(0);
    await Promise.all(
      servers.map(
        (server) =>
          new Promise<void>((resolve) => {
            const t = setTimeout(() => {
              server.forceShutdown();
              resolve();
            }, 2_000);
            server.tryShutdown(() => {
              clearTimeout(t);
              resolve();
            });
          }),
      ),
    );
  }
}
