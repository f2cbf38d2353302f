/**
 * The agent's listeners: the unix socket (NSM APIs, registry, control API for the CLI); with
 * `listen.tcp`, the NSM APIs for other hosts; with an embedded registry on a networked agent,
 * the registry on TCP (`registry.listen`, default port 5002); with `vl3ipam`, the vl3-ipam
 * server. Every TCP listener is mutual TLS with the agent's SPIFFE identity.
 */
import type * as grpc from '@grpc/grpc-js';
import { grpcJs } from '../api/grpc-js';
import { SERVER_OPTIONS } from '../api';
import type { Ctx } from '../core/ctx';
import type { Logger } from '../core/log';
import type { NetworkServiceServer } from '../core/networkservice';
import type { NsRegistry, NseRegistry } from '../core/registry';
import { addRegistryServices } from '../registry/grpc';
import { listenMtls, type MtlsListener, type X509Source } from '../spire';
import { Vl3IpamServer } from '../vl3/ipam/server';
import type { AgentConfig, Vl3IpamConfig } from './config';
import { addControl, type ControlTarget } from './grpc/control';
import type { HealthService } from './grpc/health';
import { addMonitor, addNetworkService, type MonitorSource } from './grpc/networkservice';
import { listenLocal, type LocalSocket } from './local-socket';

/** Port of the embedded registry on a networked agent without `registry.listen`. */
const REGISTRY_PORT = 5002;

/** What the listeners serve. */
export interface Served {
  server: NetworkServiceServer;
  /** The connections' monitor: the agent's hub, with its relay's when it relays. */
  hub: MonitorSource;
  registry: { ns: NsRegistry; nse: NseRegistry };
  control: ControlTarget;
  health: HealthService;
  /** The base Ctx of every call: the agent's clock, logger and lifetime. */
  ctx: () => Ctx;
}

export class Listeners {
  /** Where the agent listens, as URLs (status). */
  readonly listening: string[] = [];
  private readonly servers: grpc.Server[] = [];
  private readonly mtls: MtlsListener[] = [];
  private localSocket: LocalSocket | undefined;
  /** The vl3-ipam server and its unix socket, if any: stopped with the TCP listeners. */
  private vl3: { server: grpc.Server; socket?: LocalSocket } | undefined;

  constructor(
    private readonly identity: X509Source,
    private readonly log: Logger,
  ) {}

  /** The unix socket: NSM APIs, registry, control API and health, for local callers. */
  async local(listen: AgentConfig['listen'], s: Served): Promise<void> {
    // Built on the first connection (listenLocal): an agent nobody talks to loads no grpc-js.
    const build = () => {
      const server = new grpcJs.Server(SERVER_OPTIONS);
      addNetworkService(server, s.server, s.ctx);
      addMonitor(server, s.hub);
      addRegistryServices(server, s.registry, s.ctx());
      addControl(server, s.control, s.ctx);
      s.health.addTo(server);
      this.servers.push(server);
      return server;
    };
    this.localSocket = await listenLocal(build, listen.unix, { allowUids: listen.allowUids, log: this.log });
    this.listening.push(`unix://${listen.unix}`);
  }

  /** The NSM APIs for other hosts' agents. */
  async networkService(addr: string, s: Served): Promise<void> {
    const server = new grpcJs.Server(SERVER_OPTIONS);
    addNetworkService(server, s.server, s.ctx);
    addMonitor(server, s.hub);
    s.health.addTo(server);
    await this.tcp(server, addr);
  }

  /** The embedded registry for other hosts. */
  async registry(addr: string, s: Served): Promise<void> {
    const server = new grpcJs.Server(SERVER_OPTIONS);
    addRegistryServices(server, s.registry, s.ctx());
    s.health.addTo(server);
    await this.tcp(server, addr);
  }

  /**
   * vl3-ipam (ipam.IPAM/ManagePrefixes) on a listener of its own: mutual TLS on `host:port`
   * (any peer of a trusted trust domain, as upstream cmd-ipam-vl3 authorises), or plain on
   * `unix:///path`, open to the same users as the agent socket. Returns the server and the URL
   * it is reached at (the bound port when `listen` has port 0).
   */
  async vl3ipam(cfg: Vl3IpamConfig, allowUids: number[]): Promise<{ server: Vl3IpamServer; url: string }> {
    const ipam = new Vl3IpamServer({ prefix: cfg.prefix, clientPrefixLength: cfg.clientPrefixLength, log: this.log });
    const server = new grpcJs.Server(SERVER_OPTIONS);
    ipam.addTo(server);
    let url: string;
    if (cfg.listen.startsWith('unix://')) {
      const socketPath = cfg.listen.slice('unix://'.length);
      const socket = await listenLocal(() => server, socketPath, { allowUids, log: this.log, what: 'the vl3-ipam socket' });
      this.vl3 = { server, socket };
      url = cfg.listen;
    } else {
      const l = await listenMtls(server, cfg.listen, this.identity, { log: this.log });
      this.mtls.push(l);
      this.vl3 = { server };
      url = `tcp://${cfg.listen.slice(0, cfg.listen.lastIndexOf(':'))}:${l.port}`;
    }
    this.listening.push(url);
    this.log.info('vl3-ipam serving', { url, prefix: ipam.pool.cidr, clientPrefixLength: cfg.clientPrefixLength });
    return { server: ipam, url };
  }

  /** Stops accepting on the unix socket. */
  async closeLocal(): Promise<void> {
    await this.localSocket?.close();
    this.localSocket = undefined;
  }

  /**
   * Stops accepting on the TLS listeners, and ends vl3-ipam: its streams (the leases) are
   * cancelled at once, since they would never end by themselves.
   */
  async closeTcp(): Promise<void> {
    await Promise.all(this.mtls.splice(0).map((l) => l.close().catch(() => {})));
    const vl3 = this.vl3;
    this.vl3 = undefined;
    await vl3?.socket?.close();
    vl3?.server.forceShutdown();
  }

  /** Shuts every gRPC server down, forcing those that still have calls after 2 s. */
  async shutdown(): Promise<void> {
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

  /** Serves `server` on host:port with mutual TLS: the current SVID, peers verified per trust domain. */
  private async tcp(server: grpc.Server, addr: string): Promise<void> {
    const l = await listenMtls(server, addr, this.identity, { log: this.log });
    this.mtls.push(l);
    this.servers.push(server);
    this.listening.push(`tcp://${addr}`);
  }
}

/**
 * The URL other hosts reach this agent's endpoints at: the TCP listener (its host, or the
 * underlay address when it listens on every address; behind NAT the public address, with the
 * listener's port, as upstream's registry swapip rewrites NSE URLs), else the unix socket.
 */
export function advertisedUrl(listen: AgentConfig['listen'], underlayIp: string | undefined, publicIP?: string): string {
  if (listen.tcp) {
    const host = publicIP || listenHost(listen.tcp) || underlayIp;
    if (host) return `tcp://${bracket(host)}:${listenPort(listen.tcp)}`;
  }
  return `unix://${listen.unix}`;
}

/** Where an embedded registry serves other hosts; undefined when it serves this host only. */
export function registryListenAddress(cfg: Pick<AgentConfig, 'listen' | 'registry'>): string | undefined {
  if (cfg.registry.listen) return cfg.registry.listen;
  if (!cfg.listen.tcp) return undefined;
  return `${cfg.listen.tcp.slice(0, cfg.listen.tcp.lastIndexOf(':'))}:${REGISTRY_PORT}`;
}

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
