// Over 400 lines: the wiring of every part of the agent in one place, each a few lines.
/**
 * The agent: one process that is the local NSM manager and forwarder, the client for
 * connections the host asks for, the host of configured endpoints, and (embedded) a registry.
 * This class only wires the parts together and orders their start and stop:
 *
 *   registry-access.ts  the registry (embedded in memory or etcd, or a remote one)
 *   host.ts             WireGuard implementation, underlay, host settings
 *   mechanisms.ts       KERNEL, WIREGUARD and VXLAN and their dataplanes
 *   chains.ts           the server, remote, endpoint and held-connection chains
 *   endpoints/          hosted endpoints by kind, and their registrations
 *   held.ts             connections the agent holds: connect, retry, disconnect, records
 *   listeners.ts        the unix socket, the TCP listeners and vl3-ipam
 *   status.ts           what `nsm-agent status` shows (journal.ts: ages, next hops, heals)
 *   parts.ts            the narrow views reload.ts and systemd/units.ts work through
 *
 * State: the elements record what they make in <stateDir>/state (src/agent/state); a restarted
 * agent asks for its held connections again and takes back what the kernel still has.
 */
import { setMaxListeners } from 'node:events';
import path from 'node:path';
import { Clock, realClock } from '../core/clock';
import { Ctx } from '../core/ctx';
import { domainOf, isOtherDomain } from '../core/domain';
import { AgentError } from '../core/errors';
import { Logger, silentLogger } from '../core/log';
import type { NetworkServiceServer } from '../core/networkservice';
import type { Connection } from '../api';
import { noRecords, type Records } from '../core/records';
import type { Underlay } from '../mechanisms/tunnel/params';
import type { IpamRecord } from '../networkservice/ipam/server';
import { MonitorHub } from '../networkservice/monitor';
import { prevSegment } from '../networkservice/utils';
import type { TokenSource } from '../core/token';
import { REGISTRY_SERVICE_NAMES } from '../registry/grpc';
import { channelCredentials, createX509Source, FederatedX509Source, serveBundleEndpoint, SpiffeTokenSource, trustedBundles, waitForIdentity, type BundleEndpointServer, type X509Source } from '../spire';
import type { Vl3IpamServer } from '../vl3/ipam/server';
import type { PassthroughRecord } from '../networkservice/passthrough';
import { passthroughReaper } from '../mechanisms/kernel/bridge';
import { confirmedLiveness, heldClientChain, passthroughClientChain, relayingServerChain, remoteClientChain, serverChain } from './chains';
import { RelayTable } from '../networkservice/relay';
import type { AgentConfig } from './config';
import { HostedEndpoints } from './endpoints';
import type { Vl3Record } from './endpoints/kind';
import { removeRouterNetns } from './endpoints/vl3/router';
import { leasePrefix } from './vl3-lease';
import { wireguardMtu } from '../mechanisms/wireguard/names';
import { ConnectionJournal } from './journal';
import { ChannelPool } from './grpc/dial';
import { HealthService } from './grpc/health';
import { mergedMonitor } from './grpc/networkservice';
import { HeldConnectionManager, type HeldRecord } from './held';
import { NamespaceDns } from './dns';
import { HostDns } from './dns/hostdns';
import { unitResolvConfFiles } from './dns/unitresolvconf';
import { dnsAnswers } from './dns/counts';
import { prepareHost } from './host';
import { advertisedUrl, Listeners, registryListenAddress, type Served } from './listeners';
import { openMechanisms, registerReapers, type Mechanisms } from './mechanisms';
import { openRegistry, registryLabel, withOtherDomains, type RegistryAccess } from './registry-access';
import { readFigures, readTrafficViews, type TrafficView } from './metrics/traffic';
import type { HealCause, RunningMetrics } from './metrics';
import { startTracing, tracingSettings, type RunningTracing } from './tracing';
import type { HealTrigger } from '../networkservice/heal';
import { StateStore } from './state/store';
import { projectStatus } from './status';
import { VERSION } from './version';

export interface AgentOptions {
  clock?: Clock;
  log?: Logger;
}

/** How long start() waits for a SPIFFE identity before giving up with the reason. */
const IDENTITY_WAIT_MS = 30_000;
/** How long a refresh asked by an endpoint waits for a connection still being answered. */
const REFRESH_WAIT_MS = 15_000;
const NETWORK_SERVICE_NAMES = ['networkservice.NetworkService', 'connection.MonitorConnection'];
const HEAL_CAUSE: Record<HealTrigger, HealCause> = {
  'data plane check failed': 'liveness',
  'monitor stream broke': 'monitor_break',
  'connection down': 'connection_down',
};

export class Agent {
  readonly clock: Clock;
  readonly log: Logger;
  /** The server chain's connections: its monitor stream and the status. */
  readonly hub = new MonitorHub();
  readonly reg: RegistryAccess;
  readonly endpoints: HostedEndpoints;
  /** The connections the agent holds; set by start(). */
  held!: HeldConnectionManager;
  /** Resolvers of client namespaces whose connections carry DNS. */
  readonly dns: NamespaceDns;
  /** DNS of `netns: host` connections that carry DNS: systemd-resolved per-link settings. */
  readonly hostDns: HostDns;
  readonly started: number;
  readonly tokens: TokenSource;
  /** The agent's SPIFFE identity: mTLS on every TCP listener and dial, and the key that signs tokens. */
  readonly identity: X509Source;
  /** The server chain; built by start() (the tunnel mechanisms need the underlay). */
  server!: NetworkServiceServer;
  /** The vl3-ipam server this agent runs (`vl3ipam` in agent.yaml); set by start(). */
  vl3ipam: Vl3IpamServer | undefined;
  /** Where other hosts reach this agent's tunnels; undefined when it has no underlay. */
  underlay: Underlay | undefined;
  private mechanisms: Mechanisms | undefined;
  /** The Prometheus exporter, when agent.yaml has `metrics:`. */
  private metrics: RunningMetrics | undefined;
  /** OTLP traces, when switched on (TELEMETRY=true or `telemetry:`). */
  private tracing: RunningTracing | undefined;
  /** The state directory's records (opened by start()). */
  private store: StateStore | undefined;
  private ipamRecords: Records<IpamRecord> = noRecords();
  private vl3Records: Records<Vl3Record> = noRecords();
  private passthroughRecords: Records<PassthroughRecord> = noRecords();
  private readonly life = new AbortController();
  private readonly health = new HealthService();
  /** Connection ages, next hop URLs and last heals, for status. */
  private readonly journal: ConnectionJournal;
  private readonly pool: ChannelPool;
  private readonly listeners: Listeners;
  /** The SPIFFE bundle endpoint of the own trust domain (identity.bundleEndpoint). */
  private bundleEndpoint: BundleEndpointServer | undefined;
  /** The URL registered for hosted endpoints: the TCP listener when there is one. */
  private url: string;
  /** The connections relayed as the site's nsmgr-proxy (`interdomain.relay`). */
  private readonly relayed = new RelayTable();

  constructor(readonly cfg: AgentConfig, opts: AgentOptions = {}) {
    this.clock = opts.clock ?? realClock;
    this.log = opts.log ?? silentLogger;
    // units' resolv.conf files beside the agent's socket: /run/nsm-agent/dns for the packaged
    // agent, where the generator's drop-ins look for them
    const dnsDir = path.join(path.dirname(cfg.listen.unix), 'dns');
    this.dns = new NamespaceDns({ log: this.log, unitFiles: unitResolvConfFiles(dnsDir) });
    this.hostDns = new HostDns({ log: this.log, recordFile: path.join(dnsDir, 'host-links.json') });
    this.started = this.clock.now();
    this.journal = new ConnectionJournal(this.clock);
    this.hub.subscribe(null, (event) => this.journal.follow(event));
    setMaxListeners(0, this.life.signal); // every call in flight listens to the agent's lifetime
    this.identity = createX509Source(cfg.identity, { name: cfg.name, log: this.log, clock: this.clock });
    this.tokens = new SpiffeTokenSource(this.identity, cfg.maxTokenLifetimeMs);
    this.pool = new ChannelPool({ credentials: (url) => (url.protocol === 'tcp:' ? channelCredentials(this.identity, { tokens: this.tokens }) : undefined) });
    this.listeners = new Listeners(this.identity, this.log);
    this.url = `unix://${cfg.listen.unix}`;
    const selfId = () => this.selfId();
    const regOpts = { clock: this.clock, log: this.log, identity: this.identity, tokens: this.tokens, selfId };
    this.reg = withOtherDomains(openRegistry(cfg.registry, regOpts), cfg, regOpts);
    this.endpoints = new HostedEndpoints({
      nodeName: cfg.name,
      url: () => this.url,
      tokens: this.tokens,
      ipamRecords: () => this.ipamRecords,
      registry: this.reg.hosted ?? this.reg,
      // An endpoint registered into another domain's registry (floating) is healed like one
      // in a remote registry of this domain.
      heal: (name) => !this.reg.embedded || isOtherDomain(domainOf(name), cfg.domain),
      floating: (name) => isOtherDomain(domainOf(name), cfg.domain),
      ctx: () => this.ctx(),
      signal: this.life.signal,
      log: this.log,
      held: () => this.held,
      leasePrefix: (url, previous) => leasePrefix(url, { previous, identity: this.identity, log: this.log }),
      vl3Records: () => this.vl3Records,
      passthroughRecords: () => this.passthroughRecords,
      meshMtu: () => (this.underlay ? wireguardMtu(this.underlay.mtu, this.underlay.family) : undefined),
      tracer: () => this.tracing?.tracer,
      // The endpoint chain runs in-process after the server chain: the hop before the
      // endpoint's is this agent's, whose id keys the connection in the hub. A connection the
      // endpoint has answered may not be in the hub yet (the answer is still on its way back
      // through the forwarder): the refresh then waits for it.
      requestRefresh: (conn) => {
        const hop = prevSegment(conn)?.id;
        if (hop && !this.hub.refreshRequested(hop, REFRESH_WAIT_MS)) this.log.debug('refresh waits for the connection to be answered', { id: hop });
      },
      connectionUpdates: (cb) =>
        this.hub.subscribe(null, (event) => {
          if (event.type === 'UPDATE') for (const conn of Object.values(event.connections ?? {})) cb(conn);
        }),
      next: (endpoint) => passthroughClientChain({ endpoint, tokens: this.tokens, server: this.server }),
    });
  }

  /** A Ctx for background work: the agent's clock, logger and lifetime. */
  ctx(): Ctx {
    return Ctx.background({ clock: this.clock, log: this.log, signal: this.life.signal });
  }

  /** This agent's SPIFFE ID (undefined until the identity is loaded). */
  selfId(): string | undefined {
    try {
      return this.identity.svid().id;
    } catch {
      return undefined;
    }
  }

  async start(): Promise<void> {
    const cfg = this.cfg;
    await waitForIdentity(this.identity, IDENTITY_WAIT_MS);
    this.log.info('identity loaded', { id: this.selfId(), source: this.identity.kind });
    const store = this.openState();
    const host = await prepareHost(cfg, this.log);
    this.underlay = host.underlay;
    if (cfg.metrics) await this.startMetrics(cfg.metrics);
    const tracing = tracingSettings(cfg.telemetry);
    if (tracing) this.tracing = await startTracing(tracing, cfg.name, this.log);
    this.buildChains(store, host.wireguardKernel);

    const served: Served = {
      server: this.server,
      hub: cfg.interdomain.relay ? mergedMonitor(this.hub, this.relayed.hub) : this.hub,
      registry: this.reg,
      control: { status: async () => this.status(await this.traffic()), connections: this.held },
      health: this.health,
      ctx: () => this.ctx(),
    };
    await this.listeners.local(cfg.listen, served);
    this.url = advertisedUrl(cfg.listen, this.underlay?.ip, cfg.publicIP);
    // vl3-ipam before the endpoints: a vL3 endpoint of this agent may lease from it.
    if (cfg.vl3ipam) this.vl3ipam = (await this.listeners.vl3ipam(cfg.vl3ipam, cfg.listen.allowUids)).server;
    // Endpoints are registered before other hosts can reach this agent: after a restart, their
    // clients' heals re-request at once, and must find the endpoints (discover) already back.
    await this.endpoints.start(cfg.endpoints);
    // Address reservations of endpoints the configuration no longer has are released when due.
    store.records<IpamRecord>('ipam', { expiresOf: (r) => r.expires, reap: async (key) => this.endpoints.release(key) });
    if (cfg.listen.tcp) await this.listeners.networkService(cfg.listen.tcp, served);
    const registryAddr = this.reg.embedded ? registryListenAddress(cfg) : undefined;
    if (registryAddr) await this.listeners.registry(registryAddr, served);
    if (cfg.identity.bundleEndpoint) {
      const { listen, refreshHintS } = cfg.identity.bundleEndpoint;
      this.bundleEndpoint = await serveBundleEndpoint(this.identity, listen, { refreshHintS, log: this.log, clock: this.clock });
    }

    // resolv.conf files a crashed run left: put back before connections wire them again.
    this.dns.repair();
    await this.hostDns.repair();
    // Serving: endpoints registered, listeners up (held connections follow).
    for (const s of [...NETWORK_SERVICE_NAMES, ...REGISTRY_SERVICE_NAMES, 'nsmagent.v1.Agent']) this.health.set(s, 'SERVING');

    for (const c of cfg.connections) {
      await this.held.connect(c.url, c.netns, c.id, { retry: true }).catch((err) => this.log.error('configured connection failed', { url: c.url, error: err }));
    }
    this.log.info('agent ready', { name: cfg.name, listen: this.listeners.listening.join(','), url: this.url, tunnelIP: this.underlay?.ip, version: VERSION });
  }

  /**
   * Opens the state directory: the records a previous run left are read back (vWires to take
   * back, addresses to keep reserved, connections to ask for again) and those nobody needs any
   * more are reaped when due.
   */
  private openState(): StateStore {
    const store = new StateStore(path.join(this.cfg.stateDir, 'state'), this.clock, this.log);
    this.store = store;
    this.ipamRecords = store.records<IpamRecord>('ipam');
    // A vL3 endpoint that no configuration names any more: its router namespace goes at expiry.
    this.vl3Records = store.records<Vl3Record>('vl3', { expiresOf: (r) => r.expires, reap: (key) => removeRouterNetns(key) });
    // A passthrough's bridge that no restarted endpoint takes back goes at expiry.
    this.passthroughRecords = store.records<PassthroughRecord>('passthrough', passthroughReaper);
    registerReapers(store);
    return store;
  }

  private async startMetrics(cfg: NonNullable<AgentConfig['metrics']>): Promise<void> {
    const { startMetrics } = await import('./metrics');
    this.metrics = await startMetrics(
      cfg,
      {
        connections: () => this.hub.stored(),
        interfacesOf: (conn) => this.mechanisms?.interfacesOf(conn) ?? {},
        tunnelOf: (id) => this.mechanisms?.tunnelOf(id) ?? {},
        svidExpiresAt: () => (this.identity.current() ? this.identity.svid().expiresAt : undefined),
        bundleExpiries: () => this.bundleExpiries(),
        registryHealth: () => (this.reg.health ? { ...this.reg.health.view(), failures: this.reg.health.failures } : undefined),
        vl3Members: () =>
          this.endpoints.list().flatMap((e) => {
            const members = e.cfg.vl3 ? e.kind?.status?.()['members'] : undefined;
            return typeof members === 'number' ? [[e.cfg.name, members] as [string, number]] : [];
          }),
        dnsAnswers: () => dnsAnswers.entries(),
        now: () => this.clock.now(),
      },
      { identity: this.identity, log: this.log },
    );
  }

  /** The earliest NotAfter of each trust bundle the identity has. */
  private bundleExpiries(): [string, number][] {
    const ctx = this.identity.current();
    if (!ctx) return [];
    const out: [string, number][] = [];
    for (const [td, certs] of ctx.bundles) {
      const ends = certs.map((c) => Date.parse(c.validTo)).filter((t) => !Number.isNaN(t));
      if (ends.length) out.push([td, Math.min(...ends)]);
    }
    return out;
  }

  private buildChains(store: StateStore, wireguardKernel: boolean): void {
    const cfg = this.cfg;
    const selfId = () => this.selfId();
    const mech = openMechanisms({ underlay: this.underlay, wireguard: cfg.wireguard, wireguardKernel, store, log: this.log });
    this.mechanisms = mech;
    const observer = this.metrics?.observer;
    const nat = cfg.publicIP ? { publicIP: cfg.publicIP, privateIP: () => this.underlay?.ip } : undefined;
    // the trust domains whose peers mTLS accepts: a token from any other is refused too
    const trusts = (td: string) => trustedBundles(this.identity).has(td);
    const own = serverChain({
      name: cfg.name,
      domain: cfg.domain,
      tokens: this.tokens,
      trusts,
      selfId,
      policy: cfg.policy,
      hub: this.hub,
      mechanisms: mech.handlers,
      registry: this.reg,
      local: (name) => this.endpoints.chain(name),
      hosted: (name) => this.endpoints.registration(name),
      localVl3: (service) => this.endpoints.vl3EndpointFor(service),
      remote: this.underlay
        ? remoteClientChain({
            translation: mech.translation,
            nextHops: this.journal.nextHopRecorder(),
            tunnels: mech.tunnelClients,
            hub: this.hub,
            pool: this.pool,
            selfId,
            log: this.log,
            nat,
            tracer: this.tracing?.tracer,
          })
        : undefined,
      nat,
      tracer: this.tracing?.tracer,
      background: () => this.ctx(),
      stats: {
        known: (id) => this.hub.has(id),
        figures: async (conn) => (await readFigures([conn], mech.interfacesOf))[0]?.figures ?? {},
        ...(observer ? { requested: (conn: Connection, seconds: number) => observer.requested(conn, seconds) } : {}),
      },
    });
    this.server =
      cfg.interdomain.relay && cfg.domain
        ? relayingServerChain({
            name: cfg.name,
            domain: cfg.domain,
            tokens: this.tokens,
            trusts,
            selfId,
            nse: this.reg.nse,
            hosts: (name) => this.endpoints.chain(name) !== undefined,
            selfUrl: () => this.url,
            pool: this.pool,
            log: this.log,
            table: this.relayed,
            own,
          })
        : own;
    const heal = cfg.heal;
    const client = heldClientChain({
      name: cfg.name,
      tokens: this.tokens,
      hub: this.hub,
      server: this.server,
      keepsEndpoint: (id) => this.held.keepsEndpoint(id),
      liveness:
        heal.livenessIntervalMs > 0
          ? {
              check: confirmedLiveness(heal, this.log),
              // Each connection every livenessInterval, but at most maxChecksPerSecond periodic
              // checks in all: a host holding many connections checks each less often.
              intervalMs: () => Math.max(heal.livenessIntervalMs, (1000 * this.held.size) / heal.maxChecksPerSecond),
            }
          : undefined,
      onHeal: (id, report) => this.journal.healed(id, report),
      ...(observer
        ? {
            observeHeal: {
              started: (trigger: HealTrigger) => observer.healStarted(HEAL_CAUSE[trigger]),
              recovered: (trigger: HealTrigger, reselected: boolean, ms: number) => observer.healRecovered(HEAL_CAUSE[trigger], reselected, ms / 1000),
            },
          }
        : {}),
    });
    this.held = new HeldConnectionManager({
      name: cfg.name,
      clock: this.clock,
      log: this.log,
      ctx: () => this.ctx(),
      signal: this.life.signal,
      client,
      records: store.records<HeldRecord>('held'),
      closeOther: (ctx, id) => this.closeClientConnection(ctx, id),
      onChange: (id, h) => {
        const configs = h?.conn.context?.dns_context?.configs ?? [];
        this.dns.connectionChanged(id, h && { netns: h.netns, configs });
        this.hostDns.connectionChanged(id, h && { netns: h.netns, ifname: h.ifname, configs });
      },
    });
    // Held connections follow their connection as the server chain last returned it (refresh,
    // heal, reselect), so that a restarted agent asks for the same one.
    this.hub.subscribe(null, (event) => this.held.follow(event));
  }

  /** Closes a client's connection, found by its id at any hop, through the server chain. */
  private async closeClientConnection(ctx: Ctx, id: string): Promise<void> {
    const conn = this.hub.connections().find((c) => c.id === id || c.path?.path_segments?.[0]?.id === id);
    if (!conn) throw new AgentError('NOT_FOUND', `no connection ${id}`);
    await this.server.close(ctx, conn);
  }

  /** The traffic figures of the server chain's connections, by id (for status). */
  async traffic(): Promise<Map<string, TrafficView>> {
    const mech = this.mechanisms;
    if (!mech) return new Map();
    return readTrafficViews(this.hub.connections(), mech.interfacesOf, (id) => mech.tunnelOf(id).device, this.clock.now());
  }

  status(traffic?: Map<string, TrafficView>) {
    let svid: { id: string; expiresAt: number } | undefined;
    try {
      svid = this.identity.svid();
    } catch {
      svid = undefined;
    }
    return projectStatus({
      name: this.cfg.name,
      version: VERSION,
      started: this.started,
      registry: registryLabel(this.cfg.registry),
      registryHealth: this.reg.health?.view(),
      listen: this.listeners.listening,
      url: this.url,
      tunnelIp: this.underlay?.ip ?? '',
      identity: `${svid?.id ?? '(none yet)'} from ${this.identity.kind}`,
      svid: svid ? { id: svid.id, expires: svid.expiresAt, source: this.identity.kind } : { id: '', expires: 0, source: this.identity.kind },
      federation: this.identity instanceof FederatedX509Source ? this.identity.federation() : [],
      endpoints: this.endpoints.list(),
      connections: this.hub.connections(),
      held: this.held ? this.held.list().map(([, h]) => h) : [],
      pending: this.held ? this.held.pending() : [],
      tunnelOf: (id) => this.mechanisms?.tunnelOf(id) ?? {},
      journal: this.journal,
      traffic: (id) => traffic?.get(id),
      hostDns: this.hostDns.view(),
    });
  }

  /**
   * Stops serving. With cleanup, closes every connection (removing its interfaces) and
   * unregisters the endpoints first. Without (the default of `nsm-agent run`), vWires,
   * wireguard-go processes and registrations stay as they are, recorded in the state directory,
   * for the next start to take back: a restart or upgrade does not interrupt traffic.
   */
  async stop(opts: { cleanup: boolean } = { cleanup: true }): Promise<void> {
    this.health.shutdown();
    // Even when connections stay up for the next run: nobody answers at 127.0.0.1 meanwhile.
    // Before the connections close (cleanup), so that it is a stop for the units' files too:
    // they stay, with the host's resolvers, for the units that run on (dns/unitresolvconf.ts).
    await this.dns.stop();
    await this.hostDns.stop();
    await this.held?.stop(opts);
    await this.endpoints.stopAll(opts);
    if (opts.cleanup) {
      for (const conn of this.hub.connections()) {
        const [ctx, done] = this.ctx().withTimeout(5_000);
        await this.server.close(ctx, conn).catch(() => {});
        done();
      }
      await this.endpoints.unregisterAll();
    }
    await this.listeners.closeLocal();
    await this.mechanisms?.close();
    await this.listeners.closeTcp();
    this.life.abort();
    await this.store?.close();
    this.reg.close();
    this.pool.close();
    this.relayed.close();
    await this.bundleEndpoint?.close();
    this.identity.close();
    await this.listeners.shutdown();
    await this.metrics?.close();
    await this.tracing?.close().catch(() => {});
  }
}
