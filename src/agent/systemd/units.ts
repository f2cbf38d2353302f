// Over 400 lines: the declaration's checks and the manager that applies them are one contract.
/**
 * Units that declare network services (`[X-NetworkServiceMesh]`), on the agent's side.
 *
 * `nsm-agent unit start <unit>` (run by nsm-connect@<unit>.service before the unit) reads the
 * unit's section, checks it (checkDecl, here), makes the unit's namespace and sends the result,
 * a UnitSpec, over the systemd socket. The agent then:
 *   1. hosts and registers the unit's endpoint if it declares Provide= (pool AddressPool=, in
 *      the unit's namespace, labels with nodeName),
 *   2. requests and holds each Connect= connection into the unit's namespace,
 * all or nothing: on a failure what was made is undone and the error goes back to the helper,
 * which fails, so the unit does not start and `systemctl status` shows why. The spec is kept in
 * <runtime dir>/units/<unit>.json (RuntimeDirectoryPreserve=yes keeps it across agent
 * restarts), so a restarted agent restores its units' endpoints and connections.
 * `nsm-agent unit stop` closes the connections, closes what reached the endpoint and
 * unregisters it, then forgets the spec.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { AgentError } from '../../core/errors';
import { validateLabels } from '../../core/validate';
import type { Logger } from '../../core/log';
import { parseNsURL } from '../../networkservice/nsurl';
import { parsePrefix } from '../../networkservice/ipam/cidr';
import type { EndpointConfig } from '../config';
import { closeEndpointConnections, type AgentParts } from '../parts';
import { RawDecl, unitBase, unitNetnsName } from './declaration';
import { isValidUnitName } from './unitfile';
import { dnsSettingsProblem, type DnsSettings } from '../config/dns';
import { parseTimeSpan } from './timespan';

/** How long an OnDemand=yes unit's endpoint may serve no connection before the agent stops it. */
export const DEFAULT_IDLE_STOP_MS = 5 * 60_000;

export interface UnitSpec {
  unit: string;
  /** 'host', or a namespace name under /run/netns. */
  netns: string;
  connect: { url: string; id: string; ifname: string }[];
  /** The unit's endpoint; passthrough: it passes the services on (Passthrough=), cidr ''. */
  provide?: { services: string[]; labels: Record<string, string>; cidr: string; vl3ipam?: string[]; dns?: DnsSettings; passthrough?: boolean };
}

/** A name that is not a service unit's (cut: a caller of the systemd socket may send anything). */
function notAUnitName(unit: string): AgentError {
  return new AgentError('INVALID_ARGUMENT', `${JSON.stringify(unit).slice(0, 300)} is not a service unit name`);
}

function invalid(unit: string, why: string): AgentError {
  return new AgentError('INVALID_ARGUMENT', `${unit}: [X-NetworkServiceMesh] ${why}`);
}

const VL3IPAM_URL = /^(tcp:\/\/[^/\s]+:\d{1,5}|unix:\/\/\/\S+)$/;

/** The services and labels of Provide= or Passthrough= values (`service?label=value`). */
function servicesOf(unit: string, key: string, values: string[]): { services: string[]; labels: Record<string, string> } {
  const services: string[] = [];
  const labels: Record<string, string> = {};
  for (const p of values) {
    if (p.includes('://') || p.includes('/')) throw invalid(unit, `${key}=${p}: expected service?label=value, without a scheme or interface`);
    let u;
    try {
      u = parseNsURL(p);
    } catch (err) {
      throw invalid(unit, `${key}=: ${(err as Error).message}`);
    }
    if (!services.includes(u.networkService)) services.push(u.networkService);
    for (const [k, v] of Object.entries(u.labels)) {
      if (k in labels && labels[k] !== v) throw invalid(unit, `${key}=${p}: label ${k} is given two values (${labels[k]}, ${v})`);
      labels[k] = v;
    }
  }
  return { services, labels };
}

/** Checks a unit's declaration and turns it into what the agent applies. */
export function checkDecl(decl: RawDecl): UnitSpec {
  const { unit } = decl;
  const dnsServers = decl.dns ?? [];
  const dnsSearch = decl.dnsSearch ?? [];
  if (!isValidUnitName(unit)) throw notAUnitName(unit);
  const netns = decl.namespace === 'host' ? 'host' : unitNetnsName(unit);
  const connect: UnitSpec['connect'] = [];
  const ifnames = new Set<string>();
  for (const [i, url] of decl.connect.entries()) {
    let u;
    try {
      u = parseNsURL(url);
    } catch (err) {
      throw invalid(unit, `Connect=: ${(err as Error).message}`);
    }
    if (u.mechanism !== 'KERNEL') throw invalid(unit, `Connect=${url}: only the kernel:// mechanism can reach a unit`);
    const ifname = u.interfaceName ?? `nsm-${i + 1}`;
    if (ifnames.has(ifname)) throw invalid(unit, `Connect=${url}: interface ${ifname} is requested twice`);
    ifnames.add(ifname);
    const full = u.interfaceName ? url : url.replace(/(\?|$)/, `/${ifname}$1`);
    connect.push({ url: full, id: `${unit}/${ifname}`, ifname });
  }
  let provide: UnitSpec['provide'];
  const passthrough = decl.passthrough ?? [];
  if (passthrough.length) {
    if (decl.provide.length) throw invalid(unit, 'Provide= and Passthrough= exclude each other (a unit hosts one endpoint)');
    if (decl.addressPool.length || decl.vl3ipam.length) throw invalid(unit, `a passthrough endpoint (Passthrough=) assigns no addresses: remove ${decl.addressPool.length ? 'AddressPool=' : 'VL3IPAM='}`);
    if (dnsServers.length || dnsSearch.length) throw invalid(unit, `${dnsServers.length ? 'DNS' : 'DNSSearch'}= without Provide= (a passthrough endpoint hands out no DNS configs)`);
    provide = { ...servicesOf(unit, 'Passthrough', passthrough), cidr: '', passthrough: true };
  } else if (decl.provide.length) {
    const { services, labels } = servicesOf(unit, 'Provide', decl.provide);
    if (decl.vl3ipam.length) {
      if (decl.addressPool.length) throw invalid(unit, 'AddressPool= and VL3IPAM= exclude each other (a vL3 endpoint leases its addresses)');
      if (services.length !== 1) throw invalid(unit, 'a vL3 endpoint (VL3IPAM=) provides exactly one service');
      if (decl.vl3ipam.length > 2) throw invalid(unit, 'VL3IPAM= names at most two servers (IPv4 and IPv6)');
      for (const url of decl.vl3ipam) {
        if (!VL3IPAM_URL.test(url)) throw invalid(unit, `VL3IPAM=${url} is not a vl3-ipam URL (tcp://host:port or unix:///path)`);
      }
      provide = { services, labels, cidr: '', vl3ipam: [...new Set(decl.vl3ipam)] };
    } else {
      if (!decl.addressPool.length) throw invalid(unit, 'Provide= needs AddressPool= (the addresses handed to clients) or VL3IPAM=');
      for (const c of decl.addressPool) {
        if (!c.includes('/') || !parsePrefix(c)) throw invalid(unit, `AddressPool=${c} is not a CIDR prefix`);
      }
      provide = { services, labels, cidr: decl.addressPool.join(',') };
    }
    if (dnsServers.length || dnsSearch.length) {
      const dns = { servers: [...new Set(dnsServers)], searchDomains: [...new Set(dnsSearch)] };
      const problem = dnsSettingsProblem(dns);
      if (problem) throw invalid(unit, problem.key === 'servers' ? 'DNSSearch= needs DNS= (the servers that answer for the domains)' : `${problem.key.startsWith('servers') ? 'DNS' : 'DNSSearch'}=: ${problem.reason}`);
      provide.dns = dns;
    }
  } else if (dnsServers.length || dnsSearch.length) {
    throw invalid(unit, `${dnsServers.length ? 'DNS' : 'DNSSearch'}= without Provide=`);
  } else if (decl.addressPool.length) {
    throw invalid(unit, 'AddressPool= without Provide=');
  } else if (decl.vl3ipam.length) {
    throw invalid(unit, 'VL3IPAM= without Provide=');
  }
  onDemandOf(decl);
  return { unit, netns, connect, provide };
}

/** Provide= (or Passthrough=) values that declare `provide`'s services and labels. */
function serviceValues(provide: { services: unknown[]; labels?: unknown }): string[] {
  const labels = (provide.labels ?? {}) as Record<string, string>;
  return provide.services.map((svc) => `${String(svc)}${Object.keys(labels).length ? '?' + new URLSearchParams(labels).toString() : ''}`);
}

/**
 * OnDemand= and IdleStopSec= of a declaration: undefined for a unit that is not on demand;
 * throws INVALID_ARGUMENT for keys that do not fit (IdleStopSec= alone, OnDemand= without
 * Provide=, with VL3IPAM=, or on a template).
 */
export function onDemandOf(decl: RawDecl): { idleStopMs: number } | undefined {
  const { unit } = decl;
  if (!decl.onDemand) {
    if (decl.idleStopSec !== undefined) throw invalid(unit, 'IdleStopSec= without OnDemand=yes');
    return undefined;
  }
  if (!decl.provide.length) throw invalid(unit, 'OnDemand=yes without Provide= (the service whose Requests start the unit)');
  if (decl.vl3ipam.length) throw invalid(unit, 'OnDemand=yes is not supported with VL3IPAM=');
  if (/@\.service$/.test(unit)) throw invalid(unit, 'OnDemand=yes on a template: declare it in an instance (e.g. a drop-in of name@instance.service)');
  let idleStopMs = DEFAULT_IDLE_STOP_MS;
  if (decl.idleStopSec !== undefined) {
    const ms = parseTimeSpan(decl.idleStopSec);
    if (ms === undefined || ms < 1000) throw invalid(unit, `IdleStopSec=${decl.idleStopSec} is not a time span of at least 1s (e.g. 30s, 5min)`);
    idleStopMs = ms;
  }
  return { idleStopMs };
}

/**
 * Checks a UnitSpec as it arrives on the systemd socket (a client other than `nsm-agent unit
 * start` may send anything): the same rules as checkDecl, and the namespace and ids it derives.
 */
export function checkSpec(spec: unknown): UnitSpec {
  const s = spec as Partial<UnitSpec> | null;
  const unit = typeof s?.unit === 'string' ? s.unit : '';
  if (!isValidUnitName(unit)) throw notAUnitName(unit);
  if (s!.netns !== 'host' && s!.netns !== unitNetnsName(unit)) throw invalid(unit, `namespace must be host or ${unitNetnsName(unit)}`);
  if (!Array.isArray(s!.connect)) throw invalid(unit, 'connect must be a list');
  const provide = s!.provide;
  if (provide !== undefined && (typeof provide !== 'object' || provide === null || !Array.isArray(provide.services) || typeof provide.cidr !== 'string')) {
    throw invalid(unit, 'provide must have services and cidr');
  }
  const decl: RawDecl = {
    unit,
    namespace: s!.netns === 'host' ? 'host' : 'private',
    connect: s!.connect.map((c) => (typeof c?.url === 'string' ? c.url : '')),
    provide: provide && !provide.passthrough ? serviceValues(provide) : [],
    passthrough: provide?.passthrough ? serviceValues(provide) : [],
    addressPool: provide && provide.cidr ? provide.cidr.split(',') : [],
    vl3ipam: provide && Array.isArray(provide.vl3ipam) ? provide.vl3ipam.map(String) : [],
    dns: provide && Array.isArray(provide.dns?.servers) ? provide.dns.servers.map(String) : [],
    dnsSearch: provide && Array.isArray(provide.dns?.searchDomains) ? provide.dns.searchDomains.map(String) : [],
    files: [],
  };
  const checked = checkDecl(decl);
  checked.connect.forEach((c, i) => {
    const sent = s!.connect![i]!;
    if (sent.id !== c.id || sent.ifname !== c.ifname) throw invalid(unit, `connect[${i}]: id and ifname must be ${c.id} and ${c.ifname}`);
  });
  if (provide) validateLabels(provide.labels as Record<string, unknown>, `${unit}: provide.labels`);
  return s as UnitSpec;
}

/** The registry name of a unit's endpoint: unique per host and unit. */
export function unitEndpointName(nodeName: string, unit: string): string {
  const base = unitBase(unit)
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, '-')
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '');
  return `${nodeName}-${base || 'unit'}`.slice(0, 253).replace(/[^a-z0-9]+$/, '');
}

export interface UnitState {
  unit: string;
  netns: string;
  endpoint?: string;
  services: string[];
  connections: { id: string; url: string; ifname: string; up: boolean }[];
}

export class UnitManager {
  private readonly specs = new Map<string, UnitSpec>();
  /** One operation at a time: unit start/stop/restore and reload never interleave. */
  private queue: Promise<unknown> = Promise.resolve();
  /** Per unit, the operations of units that go out of turn (see opts.outOfTurn). */
  private readonly unitQueues = new Map<string, Promise<unknown>>();
  private readonly listeners = new Set<(unit: string) => void>();

  constructor(
    private readonly parts: AgentParts,
    private readonly opts: {
      dir: string;
      log: Logger;
      nodeName: string;
      /**
       * Units whose start and stop do not wait for the operations queued before them, only for
       * their own: an OnDemand=yes unit is started while a consumer's `unit start` (queued
       * first) waits for its endpoint.
       */
      outOfTurn?: (unit: string) => boolean;
    },
  ) {}

  /** Calls cb with the unit's name after each unit start or stop; returns the function that stops it. */
  onChange(cb: (unit: string) => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  private changed(unit: string): void {
    for (const cb of this.listeners) {
      try {
        cb(unit);
      } catch (err) {
        this.opts.log.warn('unit change listener failed', { unit, error: err });
      }
    }
  }

  /** Runs an operation on `unit` in turn, or after the unit's own ones only (opts.outOfTurn). */
  private turn<T>(unit: string, fn: () => Promise<T>): Promise<T> {
    if (!this.opts.outOfTurn?.(unit)) return this.serial(fn);
    const run = (this.unitQueues.get(unit) ?? Promise.resolve()).then(fn, fn);
    const tail = run.catch(() => {});
    this.unitQueues.set(unit, tail);
    void tail.then(() => {
      if (this.unitQueues.get(unit) === tail) this.unitQueues.delete(unit);
    });
    return run;
  }

  /** Serializes `fn` after every operation already queued (also used by the reloader). */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  endpointName(unit: string): string {
    return unitEndpointName(this.opts.nodeName, unit);
  }

  /** A connection id of a unit, with its URL and namespace (to re-request it). */
  connectionOf(id: string): { url: string; netns: string } | undefined {
    for (const s of this.specs.values()) {
      const c = s.connect.find((x) => x.id === id);
      if (c) return { url: c.url, netns: s.netns };
    }
    return undefined;
  }

  specsList(): UnitSpec[] {
    return [...this.specs.values()];
  }

  /** Applies a unit (all or nothing); the same spec again is a no-op, a changed one replaces it. */
  start(sent: UnitSpec): Promise<UnitState> {
    const name = typeof sent?.unit === 'string' ? sent.unit : '';
    return this.turn(name, async () => {
      const spec = checkSpec(sent);
      const old = this.specs.get(spec.unit);
      if (old && JSON.stringify(old) === JSON.stringify(spec) && this.isUp(old)) return this.state(old);
      if (old) await this.teardown(old);
      await this.apply(spec, { atomic: true });
      // the unit's resolv.conf (bound over its /etc/resolv.conf when its process starts) is
      // written before `unit start` returns
      await this.parts.dns?.settled();
      this.specs.set(spec.unit, spec);
      this.save(spec);
      this.opts.log.info('unit started', { unit: spec.unit, netns: spec.netns, connections: spec.connect.length, endpoint: spec.provide ? this.endpointName(spec.unit) : undefined });
      this.changed(spec.unit);
      return this.state(spec);
    });
  }

  stop(unit: string): Promise<boolean> {
    if (!isValidUnitName(unit)) return Promise.reject(notAUnitName(unit));
    return this.turn(unit, async () => {
      const spec = this.specs.get(unit) ?? this.load(unit);
      this.forget(unit);
      if (!spec) return false;
      await this.teardown(spec);
      this.opts.log.info('unit stopped', { unit });
      this.changed(unit);
      return true;
    });
  }

  /**
   * After an agent (re)start: re-applies every unit found in the state directory, best effort:
   * every unit's endpoint first, then the connections (a consumer may use a provider unit).
   */
  restore(): Promise<string[]> {
    return this.serial(async () => {
      const specs: UnitSpec[] = [];
      for (const f of this.files()) {
        const file = path.join(this.opts.dir, f);
        const spec = this.read(file);
        if (!spec || !isValidUnitName(spec.unit) || this.file(spec.unit) !== file) continue;
        this.specs.set(spec.unit, spec);
        specs.push(spec);
      }
      for (const spec of specs) await this.apply({ ...spec, connect: [] }, { atomic: false });
      for (const spec of specs) {
        await this.apply({ ...spec, provide: undefined }, { atomic: false });
        this.opts.log.info('unit restored', { unit: spec.unit, up: this.isUp(spec) });
      }
      return specs.map((s) => s.unit);
    });
  }

  states(): UnitState[] {
    return [...this.specs.values()].map((s) => this.state(s));
  }

  private isUp(spec: UnitSpec): boolean {
    return spec.connect.every((c) => this.parts.held.has(c.id)) && (!spec.provide || this.parts.endpoints.has(this.endpointName(spec.unit)));
  }

  private state(spec: UnitSpec): UnitState {
    return {
      unit: spec.unit,
      netns: spec.netns,
      endpoint: spec.provide ? this.endpointName(spec.unit) : undefined,
      services: spec.provide?.services ?? [],
      connections: spec.connect.map((c) => ({ ...c, up: this.parts.held.has(c.id) })),
    };
  }

  /**
   * Makes the unit's endpoint and connections. Atomic (unit start): the first failure undoes
   * what this call made and is thrown. Not atomic (restore): failures are logged, the rest goes on.
   */
  private async apply(spec: UnitSpec, opts: { atomic: boolean }): Promise<void> {
    const log = this.opts.log.with({ unit: spec.unit });
    const made: string[] = [];
    let endpoint: string | undefined;
    try {
      if (spec.provide && !this.parts.endpoints.has(this.endpointName(spec.unit))) {
        const cfg: EndpointConfig = {
          name: this.endpointName(spec.unit),
          services: spec.provide.services,
          labels: spec.provide.labels,
          cidr: spec.provide.cidr,
          netns: spec.netns,
          payload: 'IP',
          excludedPrefixes: [],
          // A vL3 endpoint's router is the unit's namespace: the unit is reached at its address.
          ...(spec.provide.vl3ipam ? { kind: 'vl3', vl3: { ipam: spec.provide.vl3ipam, ownNetns: false } } : {}),
          ...(spec.provide.passthrough ? { kind: 'passthrough' } : {}),
          ...(spec.provide.dns ? { dns: [spec.provide.dns] } : {}),
        };
        try {
          await this.parts.endpoints.addEndpoint(cfg);
          endpoint = cfg.name;
        } catch (err) {
          const e = AgentError.wrap(err, `${spec.unit}: ${spec.provide.passthrough ? 'Passthrough' : 'Provide'}=${spec.provide.services.join(',')}`);
          if (opts.atomic) throw e;
          log.warn('unit endpoint not restored', { error: e });
        }
      }
      for (const c of spec.connect) {
        if (this.parts.held.has(c.id)) continue;
        try {
          // Restoring after an agent restart: the connection is kept trying if it fails now.
          await this.parts.held.connect(c.url, spec.netns, c.id, { retry: !opts.atomic, memberName: spec.unit.replace(/\.service$/, '') });
          made.push(c.id);
        } catch (err) {
          const e = AgentError.wrap(err, `${spec.unit}: Connect=${c.url}`);
          if (opts.atomic) throw e;
          // After an unclean agent exit the interface is usually still there; it is left alone.
          log.warn('unit connection not restored', { id: c.id, error: e });
        }
      }
    } catch (err) {
      for (const id of made.reverse()) await this.parts.held.disconnect(id).catch(() => {});
      if (endpoint) await this.parts.endpoints.removeEndpoint(endpoint).catch(() => {});
      throw err;
    }
  }

  private async teardown(spec: UnitSpec): Promise<void> {
    for (const c of spec.connect) {
      if (this.parts.held.has(c.id)) await this.parts.held.disconnect(c.id).catch((err) => this.opts.log.warn('disconnect failed', { id: c.id, error: err }));
    }
    if (spec.provide) {
      const name = this.endpointName(spec.unit);
      await closeEndpointConnections(this.parts, name, this.opts.log);
      await this.parts.endpoints.removeEndpoint(name).catch((err) => this.opts.log.warn('unregister failed', { endpoint: name, error: err }));
    }
  }

  /**
   * The state file of a unit. A unit name may be 255 characters, so a long one is cut and a
   * hash of the whole name added to stay within the file system's name limit.
   */
  private file(unit: string): string {
    if (unit.length <= 240) return path.join(this.opts.dir, `${unit}.json`);
    const hash = createHash('sha256').update(unit).digest('hex').slice(0, 16);
    return path.join(this.opts.dir, `${unit.slice(0, 200)}~${hash}.service.json`);
  }

  private files(): string[] {
    try {
      return readdirSync(this.opts.dir).filter((f) => f.endsWith('.service.json')).sort();
    } catch {
      return [];
    }
  }

  private save(spec: UnitSpec): void {
    mkdirSync(this.opts.dir, { recursive: true, mode: 0o755 });
    const tmp = `${this.file(spec.unit)}.tmp`;
    writeFileSync(tmp, JSON.stringify(spec, null, 2) + '\n', { mode: 0o644 });
    renameSync(tmp, this.file(spec.unit));
  }

  private load(unit: string): UnitSpec | undefined {
    return this.read(this.file(unit));
  }

  private read(file: string): UnitSpec | undefined {
    try {
      return JSON.parse(readFileSync(file, 'utf8')) as UnitSpec;
    } catch {
      return undefined;
    }
  }

  private forget(unit: string): void {
    this.specs.delete(unit);
    rmSync(this.file(unit), { force: true });
  }
}
