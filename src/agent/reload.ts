/**
 * `systemctl reload nsm-agent` (SIGHUP, or `nsm-agent reload`): re-reads agent.yaml and
 * applies what changed in `endpoints:` and `connections:`, leaving everything else alone, so
 * untouched vWires are never dropped:
 *
 *   - an endpoint that is gone: what reaches it is closed, then it is unregistered;
 *   - a changed endpoint (any key): the same, then it is hosted and registered anew, and every
 *     connection the agent held through it (configured, a unit's, or made with `nsm-agent
 *     connect`) is requested again, with new addresses if the pool changed; one that cannot be
 *     made at once is retried in the background (DOWN in `status`), never dropped. The result
 *     lists what happened to each (`connections`);
 *   - an endpoint whose only change is in `policies`: it stays registered and its clients are
 *     asked to refresh (REFRESH_REQUESTED), which brings them the new ones; the client side
 *     diffs the policies, so only the changed ones are touched;
 *   - a new endpoint: hosted and registered;
 *   - connections, keyed by id (withConnectionIds gives configured ones a stable id): a removed
 *     one is closed, a changed one (url or netns) is closed and requested again, a new one or
 *     one that is not up (it failed before) is requested.
 *
 * Other keys (name, listen, registry, identity, ...) need a restart: a reload that finds them
 * changed says so (in the result, the log and STATUS=) and keeps running with the old values.
 * A file that does not load (YAML or schema error) changes nothing.
 */
import { createHash } from 'node:crypto';
import { AgentError, describeError } from '../core/errors';
import type { Logger } from '../core/log';
import { AgentConfig, checkOnHost, loadConfig } from './config';
import { closeEndpointConnections, type AgentParts } from './parts';
import type { Connection } from '../api';

export interface ReloadResult {
  file: string;
  added: string[];
  removed: string[];
  changed: string[];
  /** Keys whose new value takes effect only after a restart. */
  restartNeeded: string[];
  errors: string[];
  /**
   * What happened to each held connection the reload touched, one line each, e.g.
   * `conn-1: re-requested, 172.16.1.97/32 -> 172.16.2.1/32`.
   */
  connections: string[];
}

/** Keys a reload does not apply. */
const RESTART_KEYS = ['name', 'logLevel', 'stateDir', 'listen', 'tunnelIP', 'publicIP', 'maxTokenLifetimeMs', 'identity', 'registry', 'policy', 'domain', 'interdomain', 'vl3ipam', 'metrics', 'telemetry'] as const;

/** Gives every configured connection without an id a stable one (from its url and netns). */
export function withConnectionIds(cfg: AgentConfig): AgentConfig {
  for (const c of cfg.connections) {
    if (!c.id) c.id = `${cfg.name}-cfg-${createHash('sha256').update(`${c.url}\0${c.netns}`).digest('hex').slice(0, 10)}`;
  }
  return cfg;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

export interface ReloaderOptions {
  log: Logger;
  /** Reads the file again; default loadConfig, then checkOnHost. */
  load?: (file: string) => AgentConfig;
  /** Adjusts a freshly loaded config the way the daemon did at start (e.g. --socket). */
  adjust?: (cfg: AgentConfig) => void;
  /** Re-requests a unit's connection by id (units own those). */
  unitConnection?: (id: string) => { url: string; netns: string } | undefined;
  /** Runs the reload serialized with unit operations. */
  serial?: <T>(fn: () => Promise<T>) => Promise<T>;
}

export class ConfigReloader {
  private current: AgentConfig;

  constructor(
    private readonly parts: AgentParts,
    initial: AgentConfig,
    private readonly opts: ReloaderOptions,
  ) {
    this.current = initial;
  }

  get config(): AgentConfig {
    return this.current;
  }

  /** Re-reads `file` (default: the file the agent started with) and applies it. */
  reload(file: string = this.current.file): Promise<ReloadResult> {
    const run = async () => {
      const next = (this.opts.load ?? ((f: string) => checkOnHost(loadConfig(f))))(file);
      this.opts.adjust?.(next);
      withConnectionIds(next);
      return this.apply(next);
    };
    return this.opts.serial ? this.opts.serial(run) : run();
  }

  /**
   * Asks the clients of endpoint `name` to refresh their connections (REFRESH_REQUESTED), so
   * that they get its new policies without a reconnect.
   */
  private refreshConnections(name: string, result: ReloadResult): void {
    for (const c of this.parts.served.connections()) {
      if (c.network_service_endpoint_name !== name || !c.id) continue;
      const shown = c.path?.path_segments?.[0]?.id || c.id;
      if (this.parts.served.refreshRequested?.(c.id)) result.connections.push(`${shown}: refresh requested (policies)`);
    }
  }

  /** Applies `next` against what runs now. */
  async apply(next: AgentConfig): Promise<ReloadResult> {
    const log = this.opts.log;
    const cur = this.current;
    const result: ReloadResult = { file: next.file, added: [], removed: [], changed: [], restartNeeded: [], errors: [], connections: [] };
    for (const key of RESTART_KEYS) {
      if (!same(cur[key], next[key])) result.restartNeeded.push(key === 'maxTokenLifetimeMs' ? 'maxTokenLifetime' : key);
    }
    const note = (err: unknown, what: string) => {
      const e = AgentError.wrap(err, what);
      result.errors.push(describeError(e));
      log.error('reload: ' + what + ' failed', { error: e });
    };

    const oldEps = new Map(cur.endpoints.map((e) => [e.name, e]));
    const newEps = new Map(next.endpoints.map((e) => [e.name, e]));
    const oldConns = new Map(cur.connections.map((c) => [c.id!, c]));
    const newConns = new Map(next.connections.map((c) => [c.id!, c]));

    // 1. connections that go or change
    for (const [id, c] of oldConns) {
      const n = newConns.get(id);
      if (n && same(n, c)) continue;
      if (this.parts.held.has(id)) {
        await this.parts.held.disconnect(id).catch((err) => note(err, `close connection ${id}`));
      }
      (n ? result.changed : result.removed).push(`connection ${id}`);
    }
    // 2. endpoints that go or change; remember held connections that went with them
    const reconnect = new Map<string, { url: string; netns: string }>();
    const addressesBefore = new Map<string, string>();
    const updatedInPlace = new Set<string>();
    for (const [name, e] of oldEps) {
      const n = newEps.get(name);
      if (n && same(n, e)) continue;
      if (n && same(withoutRouting(n), withoutRouting(e)) && this.parts.endpoints.updateRouting?.(n)) {
        updatedInPlace.add(name);
        result.changed.push(`endpoint ${name}`);
        this.refreshConnections(name, result);
        continue;
      }
      const held = new Map(this.parts.held.list());
      const closed = await closeEndpointConnections(this.parts, name, log);
      for (const id of closed) {
        const h = held.get(id);
        if (!h) continue;
        addressesBefore.set(id, srcAddresses(h.conn));
        // A configured connection as agent.yaml says now, a unit's as the unit says, one made
        // with `nsm-agent connect` as it was asked for.
        const c = newConns.get(id);
        const unit = this.opts.unitConnection?.(id);
        if (c) reconnect.set(id, { url: c.url, netns: c.netns });
        else if (unit) reconnect.set(id, unit);
        else if (!oldConns.has(id)) reconnect.set(id, { url: h.url, netns: h.netns });
      }
      try {
        await this.parts.endpoints.removeEndpoint(name);
      } catch (err) {
        note(err, `unregister endpoint ${name}`);
      }
      (n ? result.changed : result.removed).push(`endpoint ${name}`);
    }
    // 3. endpoints that come or changed
    for (const [name, e] of newEps) {
      const o = oldEps.get(name);
      if ((o && same(o, e) && this.parts.endpoints.has(name)) || updatedInPlace.has(name)) continue;
      try {
        await this.parts.endpoints.addEndpoint(e);
        if (!o) result.added.push(`endpoint ${name}`);
      } catch (err) {
        note(err, `endpoint ${name}`);
      }
    }
    // 4. connections that come, changed, lost their endpoint, or were not up
    const reRequested = (id: string, h: { conn: Connection }) => {
      const before = addressesBefore.get(id);
      const after = srcAddresses(h.conn);
      result.connections.push(`${id}: re-requested, ${before === after ? after || 'same addresses' : `${before || '-'} -> ${after || '-'}`}`);
    };
    for (const [id, c] of newConns) {
      if (this.parts.held.has(id)) continue;
      const again = reconnect.delete(id);
      try {
        const h = await this.parts.held.connect(c.url, c.netns, id, { retry: again });
        if (!oldConns.has(id)) result.added.push(`connection ${id}`);
        if (again) reRequested(id, h);
      } catch (err) {
        note(err, `connection ${id} (${c.url})`);
        if (again) result.connections.push(`${id}: re-request failed, retrying: ${AgentError.from(err).message}`);
      }
    }
    for (const [id, c] of reconnect) {
      if (this.parts.held.has(id)) continue;
      try {
        reRequested(id, await this.parts.held.connect(c.url, c.netns, id, { retry: true }));
      } catch (err) {
        note(err, `reconnect ${id}`);
        result.connections.push(`${id}: re-request failed, retrying: ${AgentError.from(err).message}`);
      }
    }
    for (const line of result.connections) log.info('reload: held connection', { result: line });

    this.current = { ...next, ...Object.fromEntries(RESTART_KEYS.map((k) => [k, cur[k]])) } as AgentConfig;
    if (result.restartNeeded.length) log.warn('reload: restart needed to apply', { keys: result.restartNeeded.join(',') });
    log.info('reloaded', {
      file: next.file,
      added: result.added.length,
      removed: result.removed.length,
      changed: result.changed.length,
      errors: result.errors.length,
    });
    return result;
  }
}

/**
 * An endpoint's configuration but for what a refresh hands its clients anew: the policies
 * (the client side diffs them on every refresh; plain routes are set when a vWire is made).
 */
function withoutRouting(e: AgentConfig['endpoints'][number]): unknown {
  return { ...e, policies: undefined };
}

/** A connection's addresses on the client's side, e.g. `172.16.1.97/32`. */
function srcAddresses(conn: Connection): string {
  return (conn.context?.ip_context?.src_ip_addrs ?? []).join(',');
}
