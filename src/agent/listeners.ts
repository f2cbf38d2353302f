/**
 * The agent's listeners: the unix socket (NSM APIs, registry, control API for the CLI); with
 * `listen.tcp`, the NSM APIs for other hosts; with an embedded registry on a networked agent,
 * the registry on TCP (`registry.listen`, default port 5002). Every TCP listener is mutual TLS
 * with the agent's SPIFFE identity.
 */
import * as grpc from '@grpc/grpc-js';
import { SERVER_OPTIONS } from '../api';
import type { Ctx } from '../core/ctx';
import type { Logger } from '../core/log';
import type { NetworkServiceServer } from '../core/networkservice';
import type { NsRegistry, NseRegistry } from '../core/registry';
import type { MonitorHub } from '../networkservice/monitor';
import { addRegistryServices } from '../registry/grpc';
import { listenMtls, type MtlsListener, type X509Source } from '../spire';
import type { AgentConfig } from './config';
import { addControl, type ControlTarget } from './grpc/control';
import type { HealthService } from './grpc/health';
import { addMonitor, addNetworkService } from './grpc/networkservice';
import { listenLocal, type LocalSocket } from './local-socket';

/** Port of the embedded registry on a networked agent without `registry.listen`. */
const REGISTRY_PORT = 5002;

/** What the listeners serve. */
export interface Served {
  server: NetworkServiceServer;
  hub: MonitorHub;
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

  constructor(
    private readonly identity: X509Source,
    private readonly log: Logger,
  ) {}

  /** The unix socket: NSM APIs, registry, control API and health, for local callers. */
  async local(listen: AgentConfig['listen'], s: Served): Promise<void> {
    const server = new grpc.Server(SERVER_OPTIONS);
    addNetworkService(server, s.server, s.ctx);
    addMonitor(server, s.hub);
    addRegistryServices(server, s.registry, s.ctx());
    addControl(server, s.control, s.ctx);
    s.health.addTo(server);
    this.servers.push(server);
    this.localSocket = await listenLocal(server, listen.unix, { allowUids: listen.allowUids, log: this.log });
    this.listening.push(`unix://${listen.unix}`);
  }

  /** The NSM APIs for other hosts' agents. */
  async networkService(addr: string, s: Served): Promise<void> {
    const server = new grpc.Server(SERVER_OPTIONS);
    addNetworkService(server, s.server, s.ctx);
    addMonitor(server, s.hub);
    s.health.addTo(server);
    await this.tcp(server, addr);
  }

  /** The embedded registry for other hosts. */
  async registry(addr: string, s: Served): Promise<void> {
    const server = new grpc.Server(SERVER_OPTIONS);
    addRegistryServices(server, s.registry, s.ctx());
    s.health.addTo(server);
    await this.tcp(server, addr);
  }

  /** Stops accepting on the unix socket. */
  async closeLocal(): Promise<void> {
    await this.localSocket?.close();
    this.localSocket = undefined;
  }

  /** Stops accepting on the TLS listeners. */
  async closeTcp(): Promise<void> {
    await Promise.all(this.mtls.splice(0).map((l) => l.close().catch(() => {})));
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
 * underlay address when it listens on every address), else the unix socket.
 */
export function advertisedUrl(listen: AgentConfig['listen'], underlayIp: string | undefined): string {
  if (listen.tcp) {
    const host = listenHost(listen.tcp) || underlayIp;
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
