/**
 * Units started on demand (`OnDemand=yes` with `Provide=`), upstream NSM's scale from zero
 * with systemd units for pods (cmd-nse-supplier-k8s and sdk-k8s createpod are the model).
 *
 * While such a unit's own endpoint is not hosted, the agent registers a supplier endpoint in
 * its place: the unit's services and Provide= labels plus nodeName, named
 * `<unit endpoint>-supplier`. A Request that reaches the supplier:
 *   - from a client on this host (the agent's own path segment is the first after the
 *     client's): the supplier starts the unit over D-Bus (StartUnit, mode replace), waits up to
 *     START_TIMEOUT_MS (or the Request's own deadline) for the unit's endpoint to be hosted and
 *     the unit to be active, and serves the Request from that endpoint: the client's connection
 *     names the unit's endpoint, so refreshes and the close go straight there;
 *   - from another host: as upstream's supplier does, it starts the unit and fails at once
 *     with ENDPOINT_STARTING ("cannot provide required networkservice: endpoint created as
 *     <name>"); the client's retry finds the unit's endpoint.
 * Once the unit's endpoint is hosted the supplier is unregistered, and registered again when the
 * unit stops, so that selection finds one or the other. Start failures (no such unit, a failed
 * start job, a failed helper, a start limit hit, no endpoint in time) are UNIT_START_FAILED,
 * naming the unit and the service.
 *
 * Idle stop: every IDLE_CHECK_MS, a unit whose endpoint is hosted and serves no connection is
 * stopped (StopUnit) once it has served none for its IdleStopSec=; a connection, or a Request
 * through the supplier, starts the count again. Only the units given to set() (read from their
 * own unit files, with OnDemand=yes) are ever started or stopped: nothing from the wire names a
 * unit.
 */
import type { Connection, NetworkServiceRequest } from '../../api';
import type { Ctx } from '../../core/ctx';
import { AgentError } from '../../core/errors';
import type { Logger } from '../../core/log';
import type { NetworkServiceServer } from '../../core/networkservice';
import type { EndpointHost, HostedEndpoint } from '../endpoints';
import { DbusError } from './dbus';
import { readDecl } from './declaration';
import type { SystemdManager, UnitStatus } from './manager';
import { findUnitFiles, isTemplate, listServiceUnits, UnitDirListing, unitSearchPath } from './unitfile';
import { checkDecl, onDemandOf } from './units';

/** How long a local Request waits for an on-demand unit's endpoint, at most. */
export const START_TIMEOUT_MS = 30_000;
/** How often idle units are looked for. */
export const IDLE_CHECK_MS = 1_000;
/** How often a starting unit's state is read while its endpoint is not hosted yet (failures show there). */
const POLL_MS = 50;
/** How often once its endpoint is hosted: the unit is then about to be forked by systemd. */
const HOSTED_POLL_MS = 10;
const STOP_TIMEOUT_MS = 30_000;

export interface OnDemandUnit {
  unit: string;
  services: string[];
  labels: Record<string, string>;
  idleStopMs: number;
}

export interface OnDemandOptions {
  systemd: Pick<SystemdManager, 'start' | 'stop' | 'status'>;
  endpoints: EndpointHost;
  /** The registry name of a unit's own endpoint. */
  endpointName: (unit: string) => string;
  log: Logger;
  now?: () => number;
  startTimeoutMs?: number;
  pollMs?: number;
}

interface Entry {
  def: OnDemandUnit;
  /** Since when the unit's endpoint has served no connection (undefined: busy or not hosted). */
  idleSince?: number;
  starting?: Promise<void>;
  stopping?: Promise<void>;
  /** Supplier registration changes, one at a time. */
  sync: Promise<void>;
}

export function supplierName(unitEndpoint: string): string {
  return `${unitEndpoint.slice(0, 253 - '-supplier'.length)}-supplier`;
}

export class OnDemandUnits {
  private readonly units = new Map<string, Entry>();
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  /** Per unit, the starts waiting for its next change (sync()). */
  private readonly waiters = new Map<string, Set<() => void>>();

  constructor(private readonly opts: OnDemandOptions) {
    this.now = opts.now ?? Date.now;
  }

  has(unit: string): boolean {
    return this.units.has(unit);
  }

  list(): OnDemandUnit[] {
    return [...this.units.values()].map((e) => e.def);
  }

  /** The on-demand units from now on: suppliers of units gone are removed, new ones registered. */
  async set(defs: OnDemandUnit[]): Promise<void> {
    const wanted = new Map(defs.map((d) => [d.unit, d]));
    for (const [unit, e] of this.units) {
      const d = wanted.get(unit);
      if (d && JSON.stringify(d) === JSON.stringify(e.def)) continue;
      this.units.delete(unit);
      await e.sync;
      await this.removeSupplier(unit);
    }
    for (const d of defs) {
      if (this.units.has(d.unit)) continue;
      this.units.set(d.unit, { def: d, sync: Promise.resolve() });
      await this.sync(d.unit);
    }
  }

  /** Registers or unregisters the unit's supplier after its endpoint came or went. */
  sync(unit: string): Promise<void> {
    const e = this.units.get(unit);
    if (!e) return Promise.resolve();
    for (const wake of this.waiters.get(unit) ?? []) wake();
    e.sync = e.sync.then(async () => {
      if (this.units.get(unit) !== e) return;
      const up = this.opts.endpoints.has(this.opts.endpointName(unit));
      const name = supplierName(this.opts.endpointName(unit));
      try {
        if (up && this.opts.endpoints.has(name)) {
          await this.opts.endpoints.removeEndpoint(name);
        } else if (!up && !this.opts.endpoints.has(name)) {
          await this.opts.endpoints.addEndpoint(
            { name, services: e.def.services, labels: e.def.labels, cidr: '', netns: 'host', payload: 'IP', excludedPrefixes: [] },
            { chain: this.supplierChain(unit) },
          );
          this.opts.log.info('supplier registered', { unit, endpoint: name, services: e.def.services.join(',') });
        }
      } catch (err) {
        this.opts.log.warn('supplier registration failed', { unit, endpoint: name, error: err });
      }
    });
    return e.sync;
  }

  /** Starts the idle checks. */
  start(): void {
    this.timer ??= setInterval(() => void this.checkIdle(), IDLE_CHECK_MS);
    this.timer.unref?.();
  }

  /** Stops the idle checks and unregisters the suppliers (the units are left as they are). */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const units = [...this.units.keys()];
    for (const unit of units) {
      await this.units.get(unit)?.sync;
      this.units.delete(unit);
      await this.removeSupplier(unit);
    }
  }

  /** One idle check: stops the units idle for their IdleStopSec=; returns those it stopped. */
  async checkIdle(): Promise<string[]> {
    const stopped: string[] = [];
    for (const [unit, e] of this.units) {
      const ep = this.hosted(unit);
      if (!ep || e.starting || e.stopping || ep.connectionCount() > 0) {
        e.idleSince = undefined;
        continue;
      }
      e.idleSince ??= this.now();
      if (this.now() - e.idleSince < e.def.idleStopMs) continue;
      e.idleSince = undefined;
      stopped.push(unit);
      this.opts.log.info('stopping idle on-demand unit', { unit, idleStopMs: e.def.idleStopMs });
      e.stopping = this.stopUnit(unit).finally(() => {
        e.stopping = undefined;
      });
      await e.stopping;
    }
    return stopped;
  }

  /** Makes sure the unit runs and its endpoint is hosted (one start shared by concurrent callers). */
  async ensureRunning(unit: string, ctx: Ctx): Promise<HostedEndpoint> {
    const e = this.units.get(unit);
    if (!e) throw new AgentError('NOT_FOUND', `on-demand unit ${unit} is not known`);
    if (e.stopping) await e.stopping;
    const ep = this.hosted(unit);
    if (ep && !e.starting) return ep;
    e.starting ??= this.startUnit(e).finally(() => {
      e.starting = undefined;
    });
    await raceSignal(e.starting, ctx.signal, () => this.failure(e.def, `the Request ended while waiting for it (${abortReason(ctx.signal)})`, 'DEADLINE_EXCEEDED'));
    const hosted = this.hosted(unit);
    if (!hosted) throw this.failure(e.def, 'its endpoint went away right after the start');
    return hosted;
  }

  private hosted(unit: string): HostedEndpoint | undefined {
    const name = this.opts.endpointName(unit);
    return this.opts.endpoints.list().find((x) => x.cfg.name === name);
  }

  private failure(def: OnDemandUnit, why: string, code: 'UNIT_START_FAILED' | 'DEADLINE_EXCEEDED' = 'UNIT_START_FAILED'): AgentError {
    return new AgentError(code, `on-demand unit ${def.unit} (service ${def.services.join(',')}): ${why}`);
  }

  private async startUnit(e: Entry): Promise<void> {
    const { unit } = e.def;
    const deadline = this.now() + (this.opts.startTimeoutMs ?? START_TIMEOUT_MS);
    this.opts.log.info('starting on-demand unit', { unit });
    try {
      await this.opts.systemd.start(unit);
    } catch (err) {
      if (err instanceof DbusError && /NoSuchUnit|LoadFailed/.test(err.name)) throw this.failure(e.def, 'no such unit (systemctl daemon-reload after adding it?)');
      throw this.failure(e.def, `systemd refused to start it: ${(err as Error).message}`);
    }
    for (;;) {
      const st = await this.opts.systemd.status(unit).catch((err: Error) => {
        throw this.failure(e.def, `its state cannot be read: ${err.message}`);
      });
      const hosted = !!this.hosted(unit);
      if (hosted && st.active === 'active') return;
      if (!st.job && st.active !== 'active' && st.active !== 'activating' && st.active !== 'reloading') throw this.failure(e.def, notStarted(unit, st));
      if (this.now() >= deadline) {
        throw this.failure(e.def, `its endpoint was not registered within ${Math.round((this.opts.startTimeoutMs ?? START_TIMEOUT_MS) / 1000)} s (ActiveState ${st.active}/${st.sub})`);
      }
      const pollMs = this.opts.pollMs ?? POLL_MS;
      await this.changeOrSleep(unit, hosted ? Math.min(pollMs, HOSTED_POLL_MS) : pollMs);
    }
  }

  /** Resolves at the unit's next change (its endpoint hosted or gone) or after ms. */
  private changeOrSleep(unit: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const set = this.waiters.get(unit) ?? new Set<() => void>();
      this.waiters.set(unit, set);
      const wake = (): void => {
        clearTimeout(timer);
        set.delete(wake);
        if (!set.size && this.waiters.get(unit) === set) this.waiters.delete(unit);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      set.add(wake);
    });
  }

  private async stopUnit(unit: string): Promise<void> {
    try {
      await this.opts.systemd.stop(unit);
    } catch (err) {
      this.opts.log.warn('stopping idle on-demand unit failed', { unit, error: err });
      return;
    }
    const end = this.now() + STOP_TIMEOUT_MS;
    while (this.hosted(unit) && this.now() < end) await sleep(this.opts.pollMs ?? POLL_MS);
  }

  private async removeSupplier(unit: string): Promise<void> {
    const name = supplierName(this.opts.endpointName(unit));
    if (!this.opts.endpoints.has(name)) return;
    await this.opts.endpoints.removeEndpoint(name).catch((err) => this.opts.log.warn('supplier unregister failed', { unit, endpoint: name, error: err }));
  }

  /** The chain served under the supplier's name (connect's local next hop for it). */
  private supplierChain(unit: string): NetworkServiceServer {
    return {
      request: async (ctx: Ctx, req: NetworkServiceRequest): Promise<Connection> => {
        const e = this.units.get(unit);
        if (!e) throw new AgentError('UNAVAILABLE', `on-demand unit ${unit} is no longer declared`);
        const conn = req.connection ?? {};
        if (!fromThisHost(conn)) {
          // Upstream's supplier: create, then fail so that the client selects again.
          if (!e.starting && !this.hosted(unit)) {
            e.starting = this.startUnit(e).finally(() => {
              e.starting = undefined;
            });
            e.starting.catch((err) => this.opts.log.warn('on-demand unit start failed', { unit, error: err }));
          }
          throw new AgentError('ENDPOINT_STARTING', `cannot provide required networkservice: endpoint created as ${this.opts.endpointName(unit)} (on-demand unit ${unit}, service ${e.def.services.join(',')}): request again`);
        }
        const ep = await this.ensureRunning(unit, ctx);
        e.idleSince = undefined;
        return ep.chain.request(ctx, { ...req, connection: { ...conn, network_service_endpoint_name: ep.cfg.name } });
      },
      // Connections served through the supplier carry the unit's endpoint name: nothing here to close.
      close: async () => {},
    };
  }
}

/** Whether the Request comes from a client of this host: this agent's segment is the second. */
function fromThisHost(conn: Connection): boolean {
  return (conn.path?.index ?? 0) <= 1;
}

function notStarted(unit: string, st: UnitStatus): string {
  if (st.load && st.load !== 'loaded') return `no such unit (LoadState ${st.load})`;
  if (st.result === 'start-limit-hit') return 'started too often: its start limit was hit (systemctl reset-failed to start it again)';
  if (st.active === 'failed') return `it failed to start (Result ${st.result || 'unknown'}; see systemctl status ${unit})`;
  return `its start job ended without starting it: a unit it requires failed (see systemctl status ${unit} nsm-connect@${unit.replace(/\.service$/, '')}.service)`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function abortReason(signal: AbortSignal): string {
  const r = signal.reason as unknown;
  return r instanceof Error ? r.message : String(r ?? 'aborted');
}

/** p, or the error of onAbort() when the signal fires first. */
function raceSignal<T>(p: Promise<T>, signal: AbortSignal, onAbort: () => Error): Promise<T> {
  if (signal.aborted) return Promise.reject(onAbort());
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(onAbort());
    signal.addEventListener('abort', abort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', abort);
        resolve(v);
      },
      (err) => {
        signal.removeEventListener('abort', abort);
        reject(err);
      },
    );
  });
}

/**
 * The OnDemand=yes units along the unit search path, from their own files. A unit whose
 * section is invalid is left out (logged): its start would fail anyway.
 */
export function readOnDemandUnits(log: Logger, searchPath: string[] = unitSearchPath()): OnDemandUnit[] {
  const out: OnDemandUnit[] = [];
  const listing = new UnitDirListing();
  for (const unit of listServiceUnits(searchPath, listing)) {
    if (isTemplate(unit) || unit === 'nsm-agent.service' || unit.startsWith('nsm-connect@')) continue;
    try {
      const files = findUnitFiles(unit, searchPath, listing);
      if (files.masked) continue;
      const decl = readDecl(unit, files, listing);
      if (!decl?.onDemand) continue;
      const spec = checkDecl(decl);
      const od = onDemandOf(decl);
      if (!od || !spec.provide) continue;
      out.push({ unit, services: spec.provide.services, labels: spec.provide.labels, idleStopMs: od.idleStopMs });
    } catch (err) {
      log.warn('on-demand unit left out', { unit, error: err });
    }
  }
  return out;
}
