/**
 * Endpoints hosted by the agent (agent.yaml `endpoints:`, units' Provide=): each is an
 * in-process endpoint chain of its kind (./kinds.ts) and a registration in the registry (its
 * network services, labels with nodeName, and the agent's URL), refreshed while the agent runs
 * and removed when it stops or the endpoint is removed.
 */
import type { Tracer } from '../../networkservice/trace';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NetworkServiceEndpoint } from '../../api';
import type { Ctx } from '../../core/ctx';
import { AgentError } from '../../core/errors';
import type { Logger } from '../../core/log';
import type { NetworkServiceServer } from '../../core/networkservice';
import { chainNseRegistry, findAll, NsRegistry, NseRegistry } from '../../core/registry';
import type { Records } from '../../core/records';
import { scopedRecords } from '../../core/records';
import type { IpamRecord } from '../../networkservice/ipam/server';
import type { PassthroughRecord } from '../../networkservice/passthrough';
import type { TokenSource } from '../../core/token';
import { refreshNseClient } from '../../registry/client';
import { netnsPath } from '../../sys';
import { endpointChain } from '../chains';
import { dnsContextServer } from '../../networkservice/dnscontext';
import { policyRouteServer, type PolicyRouteSettings } from '../../networkservice/policyroute';
import { toDnsConfig } from '../config/dns';
import type { EndpointConfig } from '../config';
import type { HeldConnections } from '../held';
import type { EndpointKindEnv, EndpointKindParts, Vl3Record } from './kind';
import { endpointKind } from './kinds';

export interface HostedEndpoint {
  cfg: EndpointConfig;
  readonly chain: NetworkServiceServer;
  registration: NetworkServiceEndpoint;
  /** Connections it serves now. */
  connectionCount(): number;
  /** Frees what a reservation record of a previous run holds (key within this endpoint). */
  release(key: string): void;
  /** The kind's own parts: start, registered, stop, status. */
  readonly kind: EndpointKindParts;
  /** The routes and policies handed to clients from now on (their next Request or refresh). */
  setRouting(routing: Pick<EndpointConfig, 'routes' | 'policies'>): void;
}

export const HOST_NETNS_PATH = '/proc/self/ns/net';

/** The namespace file of 'host' or of a namespace name (or path). */
export function endpointNetnsPath(netns: string): string {
  return netns === 'host' ? HOST_NETNS_PATH : netnsPath(netns);
}

export function hostEndpoint(
  cfg: EndpointConfig,
  opts: Omit<EndpointKindEnv, 'netnsPath'> & { url: string; tracer?: Tracer | undefined },
): HostedEndpoint {
  const kind = endpointKind(cfg);
  const parts = kind(cfg, { ...opts, netnsPath: endpointNetnsPath(cfg.netns) });
  const labels = { ...cfg.labels, nodeName: opts.nodeName };
  const registration: NetworkServiceEndpoint = {
    name: cfg.name,
    network_service_names: cfg.services,
    network_service_labels: Object.fromEntries(cfg.services.map((s) => [s, { labels }])),
    url: opts.url,
  };
  const routing: PolicyRouteSettings = { routes: cfg.routes ?? [], policies: cfg.policies ?? [], ownsPolicies: cfg.policies !== undefined };
  return {
    cfg,
    chain: endpointChain(cfg.name, opts.tokens, dnsFirst(cfg, [policyRouteServer(routing), ...parts.elements]), opts.tracer),
    registration,
    connectionCount: parts.connectionCount,
    release: parts.release,
    kind: parts,
    setRouting: (r) => {
      routing.routes = r.routes ?? [];
      routing.policies = r.policies ?? [];
      routing.ownsPolicies ||= r.policies !== undefined;
    },
  };
}

/** An endpoint registered as cfg says and served by `chain`: no kind, nothing of its own to run. */
function standIn(cfg: EndpointConfig, chain: NetworkServiceServer, nodeName: string, url: string): HostedEndpoint {
  const labels = { ...cfg.labels, nodeName };
  return {
    cfg,
    chain,
    registration: {
      name: cfg.name,
      network_service_names: cfg.services,
      network_service_labels: Object.fromEntries(cfg.services.map((s) => [s, { labels }])),
      url,
    },
    connectionCount: () => 0,
    release: () => {},
    kind: { elements: [], connectionCount: () => 0, release: () => {} },
    // the unit's own endpoint serves the connections, with its own routes and policies
    setRouting: () => {},
  };
}

/** The kind's elements, after the one that hands the endpoint's DNS configs to its clients. */
function dnsFirst(cfg: EndpointConfig, elements: NetworkServiceServer[]): NetworkServiceServer[] {
  return cfg.dns?.length ? [dnsContextServer(cfg.dns.map(toDnsConfig)), ...elements] : elements;
}

/**
 * Registers the endpoint's services (only those not registered yet, so manifests applied by
 * users keep their matches) and the endpoint itself. `nse` should refresh the registration.
 */
export async function registerEndpoint(ctx: Ctx, ep: HostedEndpoint, reg: { ns: NsRegistry; nse: NseRegistry }): Promise<void> {
  await registerServices(ctx, ep, reg.ns);
  ep.registration = await reg.nse.register(ctx, ep.registration);
  ep.kind.registered?.(ep.registration);
}

/** Registers the endpoint's network services that the registry does not have. */
export async function registerServices(ctx: Ctx, ep: HostedEndpoint, ns: NsRegistry): Promise<void> {
  for (const name of ep.cfg.services) {
    const existing = await findAll(ns.find(ctx, { network_service: { name }, watch: false }));
    if (!existing.some((r) => r.network_service?.name === name)) {
      await ns.register(ctx, { name, payload: ep.cfg.payload });
    }
  }
}

/** What reload and units use of the hosted endpoints. */
export interface EndpointHost {
  /**
   * Hosts one more endpoint and registers it (kept registered until removeEndpoint or stop).
   * With opts.chain, a stand-in: registered as cfg says, served by that chain instead of a kind's
   * (an OnDemand=yes unit's supplier, which serves from the unit's own endpoint).
   */
  addEndpoint(cfg: EndpointConfig, opts?: { chain?: NetworkServiceServer }): Promise<HostedEndpoint>;
  /** Unregisters an endpoint and stops hosting it. Close its connections first. */
  removeEndpoint(name: string): Promise<void>;
  has(name: string): boolean;
  list(): HostedEndpoint[];
  /**
   * Takes an endpoint's new configuration that differs only in `policies` in place (no
   * re-registration); false when it hosts no such endpoint.
   */
  updateRouting?(cfg: EndpointConfig): boolean;
}

export interface HostedEndpointsOptions {
  nodeName: string;
  /** The URL registered for the endpoints: the agent's TCP listener when it has one. */
  url: () => string;
  tokens: TokenSource;
  /** The state directory's address reservations (all endpoints; scoped per endpoint here). */
  ipamRecords: () => Records<IpamRecord>;
  registry: { ns: NsRegistry; nse: NseRegistry };
  /** Re-register after the registry lost a registration (a remote registry that restarted): for all endpoints, or those named. */
  heal: boolean | ((name: string) => boolean);
  /**
   * True for an endpoint registered into another domain's registry (floating): at start, its
   * failed registration is logged and retried in the background rather than failing the start.
   */
  floating?: (name: string) => boolean;
  ctx: () => Ctx;
  /** The agent's lifetime: the registrations' refreshes end with it. */
  signal: AbortSignal;
  log: Logger;
  /** The agent's held connections (vL3 endpoints' peer connections). */
  held: () => HeldConnections;
  /** Leases a vl3-ipam prefix (vL3 endpoints). */
  leasePrefix: EndpointKindEnv['leasePrefix'];
  /** vL3 endpoints' records. */
  vl3Records: () => Records<Vl3Record>;
  meshMtu: EndpointKindEnv['meshMtu'];
  /** Spans of the endpoints' chains, when tracing is on. */
  tracer?: () => Tracer | undefined;
  requestRefresh?: EndpointKindEnv['requestRefresh'];
  connectionUpdates?: EndpointKindEnv['connectionUpdates'];
  next?: EndpointKindEnv['next'];
  /** The state directory's passthrough passages (all endpoints; scoped per endpoint here). */
  passthroughRecords?: () => Records<PassthroughRecord>;
}

/** The endpoints this agent hosts, by name, and their registrations. */
export class HostedEndpoints implements EndpointHost {
  private readonly endpoints = new Map<string, HostedEndpoint>();
  /** Registers through a refresh that keeps each registration alive. */
  private readonly registrar: NseRegistry;

  constructor(private readonly opts: HostedEndpointsOptions) {
    this.registrar = chainNseRegistry(
      refreshNseClient({
        heal: opts.heal,
        signal: opts.signal,
        // A registry that lost this endpoint (restarted) lost its services too.
        beforeHeal: async (ctx, nse) => {
          const ep = this.endpoints.get(nse.name ?? '');
          if (ep) await registerServices(ctx, ep, opts.registry.ns);
        },
      }),
      opts.registry.nse,
    );
  }

  get size(): number {
    return this.endpoints.size;
  }

  has(name: string): boolean {
    return this.endpoints.has(name);
  }

  /** The endpoint chain of a hosted endpoint (connect's local next hop). */
  chain(name: string): NetworkServiceServer | undefined {
    return this.endpoints.get(name)?.chain;
  }

  /** The registration of a hosted endpoint (as the registry answered it), by name. */
  registration(name: string): NetworkServiceEndpoint | undefined {
    return this.endpoints.get(name)?.registration;
  }

  list(): HostedEndpoint[] {
    return [...this.endpoints.values()];
  }

  /** The hosted vL3 endpoint serving `service` (name and registered URL), if there is one. */
  vl3EndpointFor(service: string): { name: string; url: string } | undefined {
    for (const ep of this.endpoints.values()) {
      if (ep.cfg.vl3 && ep.cfg.services.includes(service)) return { name: ep.cfg.name, url: ep.registration.url || this.opts.url() };
    }
    return undefined;
  }

  /**
   * Hosts the configured endpoints, then registers them one by one: all are hosted before
   * the first registration, so a client that finds one finds its chain.
   */
  async start(cfgs: EndpointConfig[]): Promise<void> {
    for (const cfg of cfgs) this.endpoints.set(cfg.name, this.host(cfg));
    for (const ep of this.endpoints.values()) await ep.kind.start?.();
    for (const ep of this.endpoints.values()) {
      try {
        await registerEndpoint(this.opts.ctx(), ep, { ns: this.opts.registry.ns, nse: this.registrar });
      } catch (err) {
        if (!this.opts.floating?.(ep.cfg.name)) throw err;
        // Another domain's registry must not keep this agent (and its vWires) from starting.
        this.opts.log.error('floating endpoint not registered; retrying in the background', { endpoint: ep.cfg.name, error: err });
        void this.registerLater(ep);
        continue;
      }
      this.opts.log.info('endpoint registered', { endpoint: ep.cfg.name, services: ep.cfg.services.join(','), url: this.opts.url() });
    }
  }

  /** Registers `ep` with a back-off (1 s doubling to 30 s) until it works, it is removed, or the agent stops. */
  private async registerLater(ep: HostedEndpoint): Promise<void> {
    const signal = this.opts.signal;
    for (let wait = 1_000; !signal.aborted; wait = Math.min(2 * wait, 30_000)) {
      await sleep(wait, undefined, { signal }).catch(() => {});
      if (signal.aborted || this.endpoints.get(ep.cfg.name) !== ep) return;
      try {
        await registerEndpoint(this.opts.ctx(), ep, { ns: this.opts.registry.ns, nse: this.registrar });
        this.opts.log.info('endpoint registered', { endpoint: ep.cfg.name, services: ep.cfg.services.join(','), url: this.opts.url() });
        return;
      } catch (err) {
        this.opts.log.warn('floating endpoint still not registered', { endpoint: ep.cfg.name, error: err, retryInMs: Math.min(2 * wait, 30_000) });
      }
    }
  }

  async addEndpoint(cfg: EndpointConfig, opts: { chain?: NetworkServiceServer } = {}): Promise<HostedEndpoint> {
    if (this.endpoints.has(cfg.name)) throw new AgentError('ALREADY_EXISTS', `endpoint ${cfg.name} already exists`);
    const ep = opts.chain ? standIn(cfg, opts.chain, this.opts.nodeName, this.opts.url()) : this.host(cfg);
    this.endpoints.set(cfg.name, ep);
    try {
      await ep.kind.start?.();
      await registerEndpoint(this.opts.ctx(), ep, { ns: this.opts.registry.ns, nse: this.registrar });
    } catch (err) {
      this.endpoints.delete(cfg.name);
      await ep.kind.stop?.({ cleanup: true }).catch(() => {});
      throw err;
    }
    this.opts.log.info('endpoint registered', { endpoint: cfg.name, services: cfg.services.join(',') });
    return ep;
  }

  async removeEndpoint(name: string): Promise<void> {
    const ep = this.endpoints.get(name);
    if (!ep) return;
    this.endpoints.delete(name);
    try {
      await this.registrar.unregister(this.opts.ctx(), ep.registration);
    } finally {
      await ep.kind.stop?.({ cleanup: true });
    }
    this.opts.log.info('endpoint unregistered', { endpoint: name });
  }

  updateRouting(cfg: EndpointConfig): boolean {
    const ep = this.endpoints.get(cfg.name);
    if (!ep) return false;
    ep.setRouting(cfg);
    ep.cfg = cfg;
    return true;
  }

  /** Frees an address reservation of a previous run: key `<endpoint>/<connection>`. */
  release(key: string): void {
    const cut = key.indexOf('/');
    this.endpoints.get(key.slice(0, cut))?.release(key.slice(cut + 1));
  }

  /** Unregisters every endpoint (best effort), keeping them hosted until the agent stops. */
  async unregisterAll(): Promise<void> {
    for (const ep of this.endpoints.values()) {
      await this.registrar.unregister(this.opts.ctx(), ep.registration).catch(() => {});
    }
  }

  /**
   * Stops what endpoints run beside their chains (vL3 leases and peer watches); with cleanup,
   * removes what they made. Without, it stays for the next start to take back.
   */
  async stopAll(opts: { cleanup: boolean }): Promise<void> {
    for (const ep of this.endpoints.values()) {
      await ep.kind.stop?.(opts).catch((err) => this.opts.log.warn('endpoint stop failed', { endpoint: ep.cfg.name, error: err }));
    }
  }

  private host(cfg: EndpointConfig): HostedEndpoint {
    return hostEndpoint(cfg, {
      nodeName: this.opts.nodeName,
      url: this.opts.url(),
      tokens: this.opts.tokens,
      ipamRecords: scopedRecords(this.opts.ipamRecords(), `${cfg.name}/`),
      ...(this.opts.passthroughRecords ? { passthroughRecords: scopedRecords(this.opts.passthroughRecords(), `${cfg.name}/`) } : {}),
      log: this.opts.log,
      ctx: this.opts.ctx,
      nse: this.opts.registry.nse,
      held: this.opts.held,
      leasePrefix: this.opts.leasePrefix,
      vl3Records: this.opts.vl3Records(),
      meshMtu: this.opts.meshMtu,
      tracer: this.opts.tracer?.(),
      requestRefresh: this.opts.requestRefresh,
      connectionUpdates: this.opts.connectionUpdates,
      next: this.opts.next,
    });
  }
}
