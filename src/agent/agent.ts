/**
 * The agent: one process that is the local NSM manager and forwarder, the client for
 * connections the host asks for, the host of configured endpoints, and (embedded) a registry.
 *
 *   server chain:  updatepath → begin → updatetoken → metadata → timeout → monitor → trimpath
 *                  → clientinfo → mechanisms{KERNEL} → discover → roundrobin → connect
 *   connect:       hosted endpoint chain in-process (by endpoint name)
 *   held conns:    updatepath → begin → metadata → refresh → updatetoken → server chain (in-process)
 */
import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { stateName, type Connection } from '../api';
import { toTimestamp } from '../api/time';
import { Clock, realClock } from '../core/clock';
import { Ctx } from '../core/ctx';
import { AgentError } from '../core/errors';
import { Logger, silentLogger } from '../core/log';
import { chainClient, chainServer, serverToClient, NetworkServiceClient, NetworkServiceServer } from '../core/networkservice';
import { chainNseRegistry } from '../core/registry';
import { updatePathClient, updatePathServer } from '../networkservice/updatepath';
import { beginClient, beginServer } from '../networkservice/begin';
import { metadataClient, metadataServer } from '../networkservice/metadata';
import { timeoutServer } from '../networkservice/timeout';
import { refreshClient } from '../networkservice/refresh';
import { MonitorHub, monitorServer } from '../networkservice/monitor';
import { trimPathServer } from '../networkservice/trimpath';
import { clientInfoServer } from '../networkservice/clientinfo';
import { mechanismsServer } from '../networkservice/mechanisms';
import { discoverServer } from '../networkservice/discover';
import { roundRobinServer } from '../networkservice/roundrobin';
import { parseNsURL } from '../networkservice/nsurl';
import { connectServer } from '../networkservice/connect';
import { updateTokenClient, updateTokenServer, unsignedTokens, TokenSource } from '../networkservice/updatetoken';
import { kernelServer } from '../mechanisms/kernel/server';
import { kernelMechanism } from '../mechanisms/kernel/params';
import { newRegistryServer, RegistryServer } from '../registry/server';
import { EtcdStore } from '../registry/store/etcd';
import { addRegistryServices, REGISTRY_SERVICE_NAMES } from '../registry/grpc';
import { refreshNseClient } from '../registry/client';
import * as sys from '../sys';
import type { AgentConfig } from './config';
import { HostedEndpoint, hostEndpoint, registerEndpoint } from './endpoints';
import { addMonitor, addNetworkService } from './grpc/networkservice';
import { addControl } from './grpc/control';
import { HealthService } from './grpc/health';
import { VERSION } from './version';
import { listenLocal, LocalSocket } from './local-socket';

export interface HeldConnection {
  conn: Connection;
  created: number;
  netns: string;
  ifname: string;
}

export interface AgentOptions {
  clock?: Clock;
  log?: Logger;
}

const CONNECT_TIMEOUT_MS = 15_000;

export class Agent {
  readonly clock: Clock;
  readonly log: Logger;
  readonly hub = new MonitorHub();
  readonly registry: RegistryServer;
  readonly endpoints = new Map<string, HostedEndpoint>();
  readonly held = new Map<string, HeldConnection>();
  readonly started: number;
  readonly tokens: TokenSource;
  readonly server: NetworkServiceServer;
  private readonly kernel = kernelServer();
  private readonly client: NetworkServiceClient;
  private readonly nseRegistrar;
  private readonly life = new AbortController();
  private grpcServer: grpc.Server | undefined;
  private localSocket: LocalSocket | undefined;
  private readonly health = new HealthService();
  private readonly url: string;

  constructor(readonly cfg: AgentConfig, opts: AgentOptions = {}) {
    this.clock = opts.clock ?? realClock;
    this.log = opts.log ?? silentLogger;
    this.started = this.clock.now();
    setMaxListeners(0, this.life.signal); // every call in flight listens to the agent's lifetime
    this.tokens = unsignedTokens(`spiffe://nsm.local/agent/${cfg.name}`, cfg.maxTokenLifetimeMs);
    this.url = `unix://${cfg.listen.unix}`;
    const store = cfg.registry.store === 'etcd' ? new EtcdStore({ endpoints: cfg.registry.etcd }) : undefined;
    this.registry = newRegistryServer({ clock: this.clock, log: this.log, defaultExpiration: cfg.registry.expirationMs, store });
    this.nseRegistrar = chainNseRegistry(refreshNseClient({}), this.registry.nse);
    for (const e of cfg.endpoints) {
      this.endpoints.set(e.name, hostEndpoint(e, { nodeName: cfg.name, url: this.url, tokens: this.tokens }));
    }
    this.server = chainServer(
      updatePathServer(cfg.name, { requireConnectionId: true }),
      beginServer(),
      updateTokenServer(this.tokens, { trustLocalCallers: true }),
      metadataServer(),
      timeoutServer(),
      monitorServer(this.hub),
      trimPathServer(),
      clientInfoServer({ nodeName: cfg.name }),
      mechanismsServer({ KERNEL: this.kernel }),
      discoverServer(this.registry.ns, this.registry.nse),
      roundRobinServer(),
      connectServer({ local: (name) => this.endpoints.get(name)?.chain }),
    );
    this.client = chainClient(
      updatePathClient(`${cfg.name}-nsc`),
      beginClient(),
      metadataClient(),
      refreshClient(),
      updateTokenClient(this.tokens),
      serverToClient(this.server),
    );
  }

  /** A Ctx for background work: the agent's clock, logger and lifetime. */
  ctx(): Ctx {
    return Ctx.background({ clock: this.clock, log: this.log, signal: this.life.signal });
  }

  async start(): Promise<void> {
    const socket = this.cfg.listen.unix;
    const server = new grpc.Server({ 'grpc.max_concurrent_streams': 1000 });
    const base = () => this.ctx();
    addNetworkService(server, this.server, base);
    addMonitor(server, this.hub);
    addRegistryServices(server, { ns: this.registry.ns, nse: this.registry.nse }, this.ctx());
    addControl(server, this, base);
    this.health.addTo(server);
    for (const s of ['networkservice.NetworkService', 'connection.MonitorConnection', ...REGISTRY_SERVICE_NAMES, 'nsmagent.v1.Agent']) {
      this.health.set(s, 'SERVING');
    }
    this.localSocket = await listenLocal(server, socket, { allowUids: this.cfg.listen.allowUids, log: this.log });
    this.grpcServer = server;
    for (const ep of this.endpoints.values()) {
      await registerEndpoint(this.ctx(), ep, { ns: this.registry.ns, nse: this.nseRegistrar });
      this.log.info('endpoint registered', { endpoint: ep.cfg.name, services: ep.cfg.services.join(',') });
    }
    for (const c of this.cfg.connections) {
      await this.connect(c.url, c.netns, c.id).catch((err) =>
        this.log.error('configured connection failed', { url: c.url, error: err }),
      );
    }
    this.log.info('agent ready', { name: this.cfg.name, socket, version: VERSION });
  }

  /** Requests a connection that the agent holds and refreshes until disconnect. */
  async connect(url: string, netns: string, id?: string): Promise<HeldConnection> {
    const u = parseNsURL(url);
    if (u.mechanism !== 'KERNEL') throw new AgentError('UNSUPPORTED_MECHANISM', `mechanism ${u.mechanism} is not supported for local clients`);
    const nsPath = netns === 'host' ? '/proc/self/ns/net' : sys.netnsPath(netns);
    const connId = id || `${this.cfg.name}-${randomBytes(4).toString('hex')}`;
    if (this.held.has(connId)) throw new AgentError('ALREADY_EXISTS', `connection ${connId} already exists`);
    const ifname = u.interfaceName ?? '';
    const [ctx, done] = this.ctx().withTimeout(CONNECT_TIMEOUT_MS);
    try {
      const conn = await this.client.request(ctx, {
        connection: { id: connId, network_service: u.networkService, labels: u.labels, payload: '' },
        mechanism_preferences: [kernelMechanism({ netns: nsPath, ifname })],
      });
      const held = { conn, created: this.clock.now(), netns, ifname: conn.mechanism?.parameters?.['name'] ?? ifname };
      this.held.set(connId, held);
      this.log.info('connected', { id: connId, service: u.networkService, endpoint: conn.network_service_endpoint_name });
      return held;
    } finally {
      done();
    }
  }

  /** Closes a held connection, or a client's connection by its id at any hop. */
  async disconnect(id: string): Promise<void> {
    const [ctx, done] = this.ctx().withTimeout(CONNECT_TIMEOUT_MS);
    try {
      const held = this.held.get(id);
      if (held) {
        this.held.delete(id);
        await this.client.close(ctx, held.conn);
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
      listen: [this.url],
      identity: `${this.cfg.identity.source} (unsigned tokens)`,
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
        return {
          connection: { ...conn, state: stateName(conn.state) },
          origin: held ? 'agent' : 'client',
          created: held ? toTimestamp(held.created) : undefined,
          netns: held?.netns ?? String(params['inodeURL'] ?? '').replace(/^file:\/\//, '').replace(/^\/run\/netns\//, ''),
          interface: params['name'] ?? '',
        };
      }),
    };
  }

  /** Stops serving; with cleanup, closes every connection (removing its interfaces) first. */
  async stop(opts: { cleanup: boolean } = { cleanup: true }): Promise<void> {
    this.health.shutdown();
    if (opts.cleanup) {
      for (const id of [...this.held.keys()]) await this.disconnect(id).catch(() => {});
      for (const conn of this.hub.connections()) {
        const [ctx, done] = this.ctx().withTimeout(5_000);
        await this.server.close(ctx, conn).catch(() => {});
        done();
      }
    }
    for (const ep of this.endpoints.values()) {
      await this.nseRegistrar.unregister(this.ctx(), ep.registration).catch(() => {});
    }
    await this.localSocket?.close();
    this.localSocket = undefined;
    this.life.abort();
    this.registry.close();
    if (this.registry.store instanceof EtcdStore) this.registry.store.close();
    const server = this.grpcServer;
    this.grpcServer = undefined;
    if (server) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2_000);
        server.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }
}

