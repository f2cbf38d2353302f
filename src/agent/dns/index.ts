/**
 * DNS for client namespaces: a named namespace (/run/netns/NAME) whose held connections carry
 * DNS configs (`dns_context.configs`, from their endpoints) gets a resolver the agent serves
 * inside it on 127.0.0.1:53 (UDP and TCP, ./listener.ts; queries forwarded from inside the
 * namespace, ./upstream.ts, as ./forwarder.ts says), and `/etc/netns/NAME/resolv.conf` pointing
 * at it (./resolvconf.ts). The servers are those of every config of the namespace's
 * connections plus the namespace's own resolvers from before (its original file, else the
 * host's), so names outside the mesh keep resolving. When the last such connection goes, or
 * the agent stops, the resolver closes and the original file comes back; files a crashed run
 * left are put back at start (repair).
 *
 * The private namespace of a systemd unit (nsm-<unit>, whose connections have the unit's ids)
 * gets its file in the agent's runtime directory instead (./unitresolvconf.ts), which the
 * generator binds over the unit's /etc/resolv.conf; /etc/netns is not written for it.
 *
 * Not wired here: `netns: host` connections (./hostdns.ts: systemd-resolved per-link DNS) and
 * namespaces named by a path.
 */
import { isIP } from 'node:net';
import type { DNSConfig } from '../../api';
import { isDomainName } from '../config/dns';
import type { Logger } from '../../core/log';
import { NETNS_RUN_DIR, Rtnl, openNetns, setLinkUp, type Netns } from '../../sys';
import { Forwarder, type Upstreams } from './forwarder';
import { serveResolver, RESOLVER_ADDRESS, type ResolverSockets } from './listener';
import { resolvConfFiles, type ResolvConf, type ResolvConfFiles } from './resolvconf';
import { unitResolvConfFiles, type UnitResolvConfFiles } from './unitresolvconf';
import { UdpUpstream } from './upstream';
import { anotherLiveAgent } from './owner';

export interface NamespaceDnsOptions {
  log: Logger;
  files?: ResolvConfFiles;
  /** The files of systemd units' namespaces. */
  unitFiles?: UnitResolvConfFiles;
  /** The resolver's port (53; tests may choose another). */
  port?: number;
}

interface Active {
  ns: Netns;
  sockets: ResolverSockets;
  upstream: UdpUpstream;
  forwarder: Forwarder;
  defaults: ResolvConf;
  search: string[];
  files: ResolvConfFiles;
}

interface NamespaceState {
  /** DNS configs by connection id. */
  conns: Map<string, DNSConfig[]>;
  active?: Active;
  /** Changes are applied one after another. */
  queue: Promise<void>;
  /** The private namespace of a systemd unit (its connections have the unit's ids). */
  unit: boolean;
  /** Servers and search domains as the forwarder asks for them on every query; cleared on any change. */
  upstreams?: Upstreams;
}


/**
 * True if connection `id` is one of a systemd unit's in that unit's private namespace `netns`:
 * the unit manager names them `<unit>.service/<ifname>`, the namespace `nsm-<unit>`.
 */
export function isUnitConnection(id: string, netns: string): boolean {
  const slash = id.indexOf('/');
  if (slash <= 0) return false;
  const unit = id.slice(0, slash);
  return unit.endsWith('.service') && netns === `nsm-${unit.slice(0, -'.service'.length)}`;
}

/** The namespace name a held connection's `netns` stands for, if it is a named one. */
export function namedNetns(netns: string): string | undefined {
  const name = netns.startsWith(`${NETNS_RUN_DIR}/`) ? netns.slice(NETNS_RUN_DIR.length + 1) : netns;
  if (name === 'host' || name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) return undefined;
  return name;
}

const unique = (xs: string[]) => [...new Set(xs)];

/** Servers and search domains a namespace takes from one connection, at most. */
const MAX_PER_CONNECTION = 16;

/**
 * A connection's DNS configs as the resolver and resolv.conf may use them: they come from
 * endpoints, possibly on other hosts, and end up in a file, so only IP addresses and domain
 * names pass (nothing that could add a line to resolv.conf), and a bounded number of each.
 */
export function usableConfigs(configs: readonly DNSConfig[]): DNSConfig[] {
  const out: DNSConfig[] = [];
  for (const c of configs.slice(0, MAX_PER_CONNECTION)) {
    const servers = (c.dns_server_ips ?? []).filter((s) => typeof s === 'string' && isIP(s) !== 0).slice(0, MAX_PER_CONNECTION);
    if (!servers.length) continue;
    const domains = (c.search_domains ?? []).filter(isDomainName).map((d) => d.replace(/\.$/, '')).slice(0, MAX_PER_CONNECTION);
    out.push({ dns_server_ips: servers, search_domains: domains });
  }
  return out;
}

export class NamespaceDns {
  private readonly namespaces = new Map<string, NamespaceState>();
  /** Which namespace each connection was last seen in. */
  private readonly netnsOf = new Map<string, string>();
  /** Connections with DNS configs in a namespace that gets no resolver (logged once each). */
  private readonly unwired = new Set<string>();
  private readonly files: ResolvConfFiles;
  private readonly unitFiles: UnitResolvConfFiles;
  private stopped = false;

  constructor(private readonly opts: NamespaceDnsOptions) {
    this.files = opts.files ?? resolvConfFiles();
    this.unitFiles = opts.unitFiles ?? unitResolvConfFiles();
  }

  /** Puts back the files a dead agent left (call before any connection is made). */
  repair(): void {
    for (const { name, pid } of this.files.ours()) {
      if (anotherLiveAgent(pid)) continue;
      try {
        this.files.restore(name);
        this.opts.log.info('resolv.conf of a previous run restored', { netns: name });
      } catch (err) {
        this.opts.log.warn('cannot restore resolv.conf', { netns: name, error: err });
      }
    }
    for (const { name, pid } of this.unitFiles.ours()) {
      if (anotherLiveAgent(pid)) continue;
      try {
        // kept: the unit may still run, and gets the resolver back when its connections do
        this.unitFiles.release(name, true);
        this.opts.log.info('resolv.conf of a unit namespace of a previous run released', { netns: name });
      } catch (err) {
        this.opts.log.warn('cannot release resolv.conf', { netns: name, error: err });
      }
    }
  }

  /** A held connection as it is now (undefined: closed); configs from its connection context. */
  connectionChanged(id: string, conn: { netns: string; configs: DNSConfig[] } | undefined): void {
    if (this.stopped) return;
    const before = this.netnsOf.get(id);
    const name = conn ? namedNetns(conn.netns) : undefined;
    if (before !== undefined && before !== name) {
      this.netnsOf.delete(id);
      this.namespaces.get(before)?.conns.delete(id);
      this.schedule(before);
    }
    const configs = usableConfigs(conn?.configs ?? []);
    if (name === undefined) {
      // `host`: ./hostdns.ts wires those through systemd-resolved
      if (conn && conn.netns !== 'host' && configs.length && !this.unwired.has(id)) {
        this.unwired.add(id);
        this.opts.log.info('DNS configs of a connection not wired: only named namespaces (/run/netns/NAME) get a resolver', { id, netns: conn.netns });
      }
      if (!conn) this.unwired.delete(id);
      return;
    }
    let state = this.namespaces.get(name);
    if (!configs.length && !state?.conns.has(id)) return;
    if (!state) this.namespaces.set(name, (state = { conns: new Map(), queue: Promise.resolve(), unit: isUnitConnection(id, name) }));
    if (configs.length) {
      state.conns.set(id, configs);
      this.netnsOf.set(id, name);
    } else {
      state.conns.delete(id);
      this.netnsOf.delete(id);
    }
    this.schedule(name);
  }

  /** Namespaces served now, with their servers and search domains (status, tests). */
  served(): { netns: string; servers: string[]; search: string[] }[] {
    return [...this.namespaces].filter(([, s]) => s.active).map(([netns, s]) => ({ netns, ...this.upstreams(s) }));
  }

  /** Waits for the changes scheduled so far. */
  async settled(): Promise<void> {
    await Promise.all([...this.namespaces.values()].map((s) => s.queue));
  }

  /** Closes every resolver and puts every file back. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const [name, state] of this.namespaces) {
      state.conns.clear();
      this.schedule(name);
    }
    await this.settled();
  }

  private schedule(name: string): void {
    const state = this.namespaces.get(name);
    if (!state) return;
    // every change of a namespace's connections comes through here
    state.upstreams = undefined;
    state.queue = state.queue.then(() => this.sync(name, state)).catch((err) => this.opts.log.warn('namespace DNS not applied', { netns: name, error: err }));
  }

  private upstreams(state: NamespaceState): Upstreams {
    return (state.upstreams ??= this.computeUpstreams(state));
  }

  private computeUpstreams(state: NamespaceState): Upstreams {
    const configs = [...state.conns.values()].flat();
    const defaults = state.active?.defaults ?? { nameservers: [], search: [] };
    return {
      // the resolver itself is never one of its servers (a loop)
      servers: unique([...configs.flatMap((c) => c.dns_server_ips ?? []), ...defaults.nameservers]).filter((s) => s !== RESOLVER_ADDRESS),
      search: unique([...configs.flatMap((c) => c.search_domains ?? []), ...defaults.search]),
    };
  }

  private async sync(name: string, state: NamespaceState): Promise<void> {
    if (state.conns.size === 0) {
      if (state.active) await this.deactivate(name, state);
      if (state.conns.size === 0 && this.namespaces.get(name) === state) this.namespaces.delete(name);
      return;
    }
    if (!state.active) {
      await this.activate(name, state);
      return;
    }
    const { search } = this.upstreams(state);
    if (search.join(' ') !== state.active.search.join(' ')) {
      state.active.files.update(name, search);
      state.active.search = search;
    }
    state.active.forwarder.flush();
  }

  private async activate(name: string, state: NamespaceState): Promise<void> {
    const ns = openNetns(name);
    const upstream = new UdpUpstream(ns);
    const files = state.unit ? this.unitFiles : this.files;
    try {
      // 127.0.0.1 is there only with the loopback up
      await setLinkUp(Rtnl.for(ns), 'lo', true);
      const search = unique([...state.conns.values()].flat().flatMap((c) => c.search_domains ?? []));
      const defaults = files.wire(name, search);
      const forwarder = new Forwarder({ exchange: upstream.exchange, upstreams: () => this.upstreams(state) });
      state.active = { ns, upstream, forwarder, defaults, search, files, sockets: undefined as unknown as ResolverSockets };
      state.upstreams = undefined; // the namespace's own resolvers are known now
      const all = this.upstreams(state).search;
      if (all.join(' ') !== search.join(' ')) files.update(name, all);
      state.active.search = all;
      state.active.sockets = await serveResolver(ns, forwarder, this.opts.port);
      this.opts.log.info('DNS resolver serving in namespace', { netns: name, ...this.upstreams(state) });
    } catch (err) {
      state.active = undefined;
      state.upstreams = undefined;
      upstream.close();
      files.restore(name);
      ns.close();
      throw err;
    }
  }

  private async deactivate(name: string, state: NamespaceState): Promise<void> {
    const a = state.active!;
    state.active = undefined;
    state.upstreams = undefined;
    try {
      await a.sockets.close();
    } finally {
      a.upstream.close();
      a.ns.close();
      // a unit's file stays over an agent stop: the unit runs on, the next agent wires it again
      if (a.files === this.unitFiles) this.unitFiles.release(name, this.stopped);
      else a.files.restore(name);
      this.opts.log.info('DNS resolver of namespace closed, resolv.conf restored', { netns: name });
    }
  }
}
