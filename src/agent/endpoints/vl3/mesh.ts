/**
 * The mesh of a vL3 endpoint with the other endpoints of its service, by upstream's rule
 * (cmd-nse-vl3-vpp): each endpoint connects, as a client of that endpoint by name, to every
 * endpoint of the service registered before it (initial_registration_time; ties broken by
 * name so that two endpoints never both connect), so a new host joins without any change on
 * the others. Each peer connection is a held connection pinned to the peer (its heal never
 * moves it elsewhere) from the router namespace, asking with this endpoint's own address and
 * the routes to its prefix; the peer answers with the routes to its own prefix and the whole
 * network, so the vWire between the routers carries the traffic between their members.
 * A peer whose registration goes (unregistered, or expired) is disconnected: its routes go with
 * its vWire. The registry is watched for that, and for older peers found late.
 */
import { createHash } from 'node:crypto';
import type { ConnectionContext, NetworkServiceEndpoint } from '../../../api';
import { fromTimestamp } from '../../../api/time';
import type { Ctx } from '../../../core/ctx';
import { AgentError } from '../../../core/errors';
import type { Logger } from '../../../core/log';
import type { NseRegistry } from '../../../core/registry';
import type { HeldConnections } from '../../held';

export interface MeshOptions {
  /** This endpoint's name and service. */
  self: string;
  service: string;
  /** The router namespace (path) the peer vWires end in. */
  netnsPath: string;
  nse: NseRegistry;
  held: () => HeldConnections;
  /** The context to ask peers with: this endpoint's own addresses and routes to its prefixes. */
  context: () => ConnectionContext;
  ctx: () => Ctx;
  log: Logger;
}

function registeredAt(nse: NetworkServiceEndpoint): number {
  return fromTimestamp(nse.initial_registration_time) ?? Number.MAX_SAFE_INTEGER;
}

/** True if `peer` was registered before `self` (so `self` connects to it). */
export function isOlder(peer: NetworkServiceEndpoint, self: NetworkServiceEndpoint): boolean {
  const a = registeredAt(peer);
  const b = registeredAt(self);
  return a < b || (a === b && (peer.name ?? '') < (self.name ?? ''));
}

/** The id of the connection from `self` to `peer` (stable across restarts). */
export function peerConnectionId(self: string, peer: string): string {
  return `vl3-${createHash('sha256').update(`${self}\n${peer}`).digest('hex').slice(0, 16)}`;
}

/** The router's interface towards `peer` (at most 15 characters). */
export function peerIfName(self: string, peer: string): string {
  return `vl3p-${createHash('sha256').update(`${self}\n${peer}`).digest('hex').slice(0, 10)}`;
}

export class Vl3Mesh {
  /** Peers connected (or being retried), by name → connection id. */
  private readonly peers = new Map<string, string>();
  private self: NetworkServiceEndpoint | undefined;
  private watch: AbortController | undefined;

  constructor(private readonly o: MeshOptions) {}

  /** Names of the peers this endpoint connects to. */
  peerNames(): string[] {
    return [...this.peers.keys()];
  }

  /** True if `id` is the (held) connection of this endpoint to one of its peers. */
  isPeerConnection(id: string): boolean {
    for (const peerId of this.peers.values()) if (peerId === id) return true;
    return false;
  }

  /** Starts (or, after a re-registration, goes on) meshing as `registration`. */
  start(registration: NetworkServiceEndpoint): void {
    this.self = registration;
    if (this.watch) return;
    this.watch = new AbortController();
    void this.follow(this.watch.signal);
  }

  /** Disconnects every peer and connects again (this endpoint's prefix changed). */
  async renew(): Promise<void> {
    const names = [...this.peers.keys()];
    await this.dropAll();
    const known = await this.known().catch(() => []);
    for (const nse of known) if (names.includes(nse.name ?? '')) this.consider(nse);
  }

  /** Stops watching; disconnects every peer. */
  async stop(opts: { disconnect: boolean }): Promise<void> {
    this.watch?.abort();
    this.watch = undefined;
    if (opts.disconnect) await this.dropAll();
    this.peers.clear();
  }

  private async dropAll(): Promise<void> {
    for (const [name, id] of [...this.peers]) {
      this.peers.delete(name);
      await this.o
        .held()
        .disconnect(id)
        .catch((err) => {
          // Already closed (the agent's stop closes every held connection first).
          if (AgentError.from(err).code !== 'NOT_FOUND') this.o.log.warn('vL3 peer disconnect failed', { endpoint: this.o.self, peer: name, error: err });
        });
    }
  }

  private async known(): Promise<NetworkServiceEndpoint[]> {
    const out: NetworkServiceEndpoint[] = [];
    for await (const r of this.o.nse.find(this.o.ctx(), { network_service_endpoint: { network_service_names: [this.o.service] }, watch: false })) {
      if (!r.deleted && r.network_service_endpoint) out.push(r.network_service_endpoint);
    }
    return out;
  }

  /** Watches the service's endpoints until stopped, reconnecting the watch with back-off. */
  private async follow(signal: AbortSignal): Promise<void> {
    let delay = 200;
    while (!signal.aborted) {
      const [ctx, done] = this.o.ctx().withSignal(signal);
      try {
        for await (const r of this.o.nse.find(ctx, { network_service_endpoint: { network_service_names: [this.o.service] }, watch: true })) {
          delay = 200;
          const nse = r.network_service_endpoint;
          if (!nse?.name || nse.name === this.o.self) continue;
          if (r.deleted || (fromTimestamp(nse.expiration_time) ?? Infinity) <= Date.now()) void this.drop(nse.name);
          else this.consider(nse);
        }
      } catch (err) {
        if (signal.aborted) return;
        this.o.log.debug('vL3 mesh: registry watch ended', { endpoint: this.o.self, error: AgentError.from(err).message });
      } finally {
        done();
      }
      if (signal.aborted) return;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5_000);
    }
  }

  private consider(nse: NetworkServiceEndpoint): void {
    const name = nse.name ?? '';
    if (!this.self || this.peers.has(name) || !(nse.network_service_names ?? []).includes(this.o.service)) return;
    if (!isOlder(nse, this.self)) return;
    const id = peerConnectionId(this.o.self, name);
    this.peers.set(name, id);
    const url = `kernel://${this.o.service}/${peerIfName(this.o.self, name)}`;
    this.o.log.info('vL3 mesh: connecting to peer', { endpoint: this.o.self, peer: name });
    this.o
      .held()
      .connect(url, this.o.netnsPath, id, { retry: true, endpoint: name, context: this.o.context() })
      .catch((err) => this.o.log.warn('vL3 mesh: peer not reached yet, retrying', { endpoint: this.o.self, peer: name, error: AgentError.from(err).message }));
  }

  private async drop(name: string): Promise<void> {
    const id = this.peers.get(name);
    if (!id) return;
    this.peers.delete(name);
    this.o.log.info('vL3 mesh: peer left', { endpoint: this.o.self, peer: name });
    await this.o.held().disconnect(id).catch(() => {});
  }
}
