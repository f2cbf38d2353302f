/**
 * Held connections: connections the agent itself requests for the host (agent.yaml
 * `connections:`, `nsm-agent connect`, units' Connect=) and keeps until disconnect. The
 * client chain under them refreshes and heals each; this module asks for them, retries those
 * that could not be made, closes them, and records each in the state directory so that a
 * restarted agent asks for the same connection again (same path, mechanism and addresses) and
 * takes its vWire back.
 */
import { randomBytes } from 'node:crypto';
import { stateName, type Connection, type ConnectionContext, type ConnectionEvent } from '../api';
import type { Clock } from '../core/clock';
import type { Ctx } from '../core/ctx';
import { AgentError } from '../core/errors';
import { validateId, validateLabels } from '../core/validate';
import { Limiter } from '../core/limiter';
import type { Logger } from '../core/log';
import type { NetworkServiceClient } from '../core/networkservice';
import type { Records } from '../core/records';
import { kernelMechanism } from '../mechanisms/kernel/params';
import { parseNsURL } from '../networkservice/nsurl';
import { endpointNetnsPath } from './endpoints';

export interface HeldConnection {
  conn: Connection;
  created: number;
  netns: string;
  ifname: string;
  /** The nsm:// URL it was asked with. */
  url: string;
  /** What was last written to its record (see follow). */
  recorded?: string;
}

/** A held connection as recorded in the state directory, to be asked for again after a restart. */
export interface HeldRecord {
  url: string;
  netns: string;
  ifname: string;
  created: number;
  /** The connection as last seen by the client: same ids and path, mechanism, addresses. */
  conn: Connection;
  /** The endpoint it is pinned to (see ConnectOptions.endpoint). */
  endpoint?: string;
}

export interface ConnectOptions {
  /** Retry a failed request in the background with back-off (the first error is still thrown). */
  retry?: boolean;
  /**
   * Asks this endpoint by name, and keeps it on a heal's reselect (a vL3 endpoint meshing with
   * a peer): the connection never moves to another endpoint.
   */
  endpoint?: string;
  /** The connection context of the first request (a vL3 endpoint's own address and routes). */
  context?: ConnectionContext;
}

/** A held connection that is not established (yet, or since a failed heal), being retried. */
export interface PendingConnection {
  id: string;
  url: string;
  netns: string;
}

/** What reload, units and the control API use of the agent's connections. */
export interface HeldConnections {
  /** Requests and holds a connection; see HeldConnectionManager.connect. */
  connect(url: string, netns: string, id?: string, opts?: ConnectOptions): Promise<HeldConnection>;
  /** Closes a held connection, or a client's connection by its id at any hop. */
  disconnect(id: string): Promise<void>;
  has(id: string): boolean;
  /** The established held connections, by id. */
  list(): [string, HeldConnection][];
}

export interface HeldConnectionOptions {
  /** The agent's name: generated ids are `<name>-<hex>`. */
  name: string;
  clock: Clock;
  log: Logger;
  /** A Ctx for background work, bound to the agent's lifetime. */
  ctx: () => Ctx;
  /** The agent's lifetime: no retry is scheduled once it is aborted. */
  signal: AbortSignal;
  /** The client chain the connections are requested and closed through. */
  client: NetworkServiceClient;
  records: Records<HeldRecord>;
  /** Closes a connection this manager does not hold (a client's, by its id at any hop). */
  closeOther: (ctx: Ctx, id: string) => Promise<void>;
  /** Requests and closes in progress at once; default MAX_CONCURRENT_CONNECTS. */
  concurrency?: number;
  /** Back-off of connections that could not be (re-)established. */
  retry?: { minMs: number; maxMs: number };
  /** Told of each held connection as established or changed, and (undefined) when it is closed. */
  onChange?: (id: string, held: HeldConnection | undefined) => void;
}

const CONNECT_TIMEOUT_MS = 15_000;
/**
 * Held connections requested (or closed) at once beyond this wait for their turn. The agent
 * has one thread: a thousand connects take as long one after another as all at once, but all
 * at once each keeps its whole chain of suspended calls, Ctxs and request copies alive until
 * the last is done, which costs heap for nothing.
 */
const MAX_CONCURRENT_CONNECTS = 64;
const RETRY = { minMs: 200, maxMs: 5_000 };

export class HeldConnectionManager implements HeldConnections {
  private readonly held = new Map<string, HeldConnection>();
  /** Held connections being retried in the background, by id. */
  private readonly retrying = new Map<string, { url: string; netns: string; cancel: () => void }>();
  private readonly connects: Limiter;
  /** First requests in flight, by id. */
  private readonly inFlight = new Map<string, { url: string; netns: string; done: Promise<HeldConnection> }>();
  /** Connections pinned to their endpoint (ConnectOptions.endpoint), by id. */
  private readonly pinned = new Map<string, string>();
  private readonly retryMs: { minMs: number; maxMs: number };

  constructor(private readonly opts: HeldConnectionOptions) {
    this.connects = new Limiter(opts.concurrency ?? MAX_CONCURRENT_CONNECTS);
    this.retryMs = opts.retry ?? RETRY;
  }

  get size(): number {
    return this.held.size;
  }

  has(id: string): boolean {
    return this.held.has(id);
  }

  /** True if the connection keeps its endpoint on reselect (begin's keepsEndpoint). */
  keepsEndpoint(id: string): boolean {
    return this.pinned.has(id);
  }

  get(id: string): HeldConnection | undefined {
    return this.held.get(id);
  }

  list(): [string, HeldConnection][] {
    return [...this.held];
  }

  /** Held connections not established, being retried. */
  pending(): PendingConnection[] {
    return [...this.retrying].filter(([id]) => !this.held.has(id)).map(([id, r]) => ({ id, url: r.url, netns: r.netns }));
  }

  /**
   * Requests a connection that the agent holds and refreshes until disconnect. The same id
   * asked for again with the same URL and namespace returns the held connection. A connection
   * the previous run held under this id is asked for as it was (same path, mechanism and
   * addresses), so its vWire is taken back rather than made again.
   * With `retry`, a failed request is retried in the background with back-off (the first
   * error is still thrown); without, nothing is kept.
   */
  async connect(url: string, netns: string, id?: string, opts: ConnectOptions = {}): Promise<HeldConnection> {
    const u = parseNsURL(url);
    if (u.mechanism !== 'KERNEL') throw new AgentError('UNSUPPORTED_MECHANISM', `mechanism ${u.mechanism} is not supported for local clients`);
    validateLabels(u.labels, `${url}: labels`);
    if (id) validateId(id);
    let nsPath: string;
    try {
      nsPath = endpointNetnsPath(netns);
    } catch (err) {
      throw new AgentError('INVALID_ARGUMENT', `network namespace ${JSON.stringify(netns)}: give a name under /run/netns or an absolute path`, { cause: err });
    }
    const connId = id || `${this.opts.name}-${randomBytes(4).toString('hex')}`;
    const same = (h: { url: string; netns: string }) => h.url === url && h.netns === netns;
    const existing = this.held.get(connId);
    if (existing && same(existing)) return existing;
    // The same connection asked for while its first request is in flight (a unit's restore
    // and a resume, a vL3 endpoint and a resume): one request, both wait for it.
    const inFlight = this.inFlight.get(connId);
    if (inFlight && same(inFlight)) return inFlight.done;
    const pending = this.retrying.get(connId);
    if (existing || (pending && !same(pending))) throw new AgentError('ALREADY_EXISTS', `connection ${connId} already exists`);
    if (pending) throw new AgentError('UNAVAILABLE', `connection ${connId} is being re-established`);
    const records = this.opts.records;
    const previous = records.claim(connId);
    const before = previous && same(previous) ? previous : undefined;
    const ifname = u.interfaceName ?? '';
    const endpoint = opts.endpoint ?? before?.endpoint;
    if (endpoint) this.pinned.set(connId, endpoint);
    const attempt = (): Promise<HeldConnection> => this.connects.run(once);
    const once = async (): Promise<HeldConnection> => {
      const [ctx, done] = this.opts.ctx().withTimeout(CONNECT_TIMEOUT_MS);
      try {
        const conn = await this.opts.client.request(ctx, {
          connection: before
            ? { ...before.conn, state: 'UP' }
            : {
                id: connId,
                network_service: u.networkService,
                labels: u.labels,
                payload: '',
                network_service_endpoint_name: endpoint ?? '',
                ...(opts.context ? { context: opts.context } : {}),
              },
          mechanism_preferences: [kernelMechanism({ netns: nsPath, ifname })],
        });
        const held: HeldConnection = {
          conn,
          created: before?.created ?? this.opts.clock.now(),
          netns,
          ifname: conn.mechanism?.parameters?.['name'] ?? ifname,
          url,
        };
        this.held.set(connId, held);
        this.record(connId, held);
        this.opts.onChange?.(connId, held);
        this.opts.log.info(before ? 'connection of the previous run re-established' : 'connected', {
          id: connId,
          service: u.networkService,
          endpoint: conn.network_service_endpoint_name,
        });
        return held;
      } finally {
        done();
      }
    };
    const first = attempt();
    const flight = { url, netns, done: first };
    this.inFlight.set(connId, flight);
    try {
      return await first;
    } catch (err) {
      if (!opts.retry) {
        if (previous) records.delete(connId);
        this.pinned.delete(connId);
        throw err;
      }
      if (!before) {
        records.put(connId, { url, netns, ifname, created: this.opts.clock.now(), conn: { id: connId, network_service: u.networkService, labels: u.labels }, endpoint });
      }
      this.retry(connId, url, netns, attempt);
      throw err;
    } finally {
      if (this.inFlight.get(connId) === flight) this.inFlight.delete(connId);
    }
  }

  /**
   * Asks again for the connections the previous run held that nothing has asked for since
   * (configured and unit connections are asked for before): connections made with
   * `nsm-agent connect`. Failures are retried in the background.
   */
  async resume(): Promise<void> {
    for (const [id, r] of this.opts.records.leftovers()) {
      if (this.held.has(id) || this.retrying.has(id)) continue;
      await this.connect(r.url, r.netns, id, { retry: true, endpoint: r.endpoint }).catch((err) =>
        this.opts.log.warn('connection of the previous run not re-established yet', { id, url: r.url, error: err }),
      );
    }
  }

  /**
   * Closes a held connection, or a client's connection by its id at any hop. A held connection
   * named by its id at another hop (this agent's, the endpoint's) is closed as held, through
   * the client chain: closing only the server side would leave the client holding it, and
   * heal would ask for it again.
   */
  async disconnect(hopId: string): Promise<void> {
    const id = this.heldIdAtAnyHop(hopId);
    this.pinned.delete(id);
    const retry = this.retrying.get(id);
    if (retry) {
      retry.cancel();
      this.retrying.delete(id);
      this.opts.records.delete(id);
      if (!this.held.has(id)) {
        this.opts.log.info('disconnected', { id });
        return;
      }
    }
    const held = this.held.get(id);
    if (held) {
      this.held.delete(id);
      this.opts.records.delete(id);
      this.opts.onChange?.(id, undefined);
      // Its own deadline, from when its turn comes.
      await this.connects.run(async () => {
        const [ctx, done] = this.opts.ctx().withTimeout(CONNECT_TIMEOUT_MS);
        try {
          await this.opts.client.close(ctx, held.conn);
        } finally {
          done();
        }
      });
      this.opts.log.info('disconnected', { id });
      return;
    }
    const [ctx, done] = this.opts.ctx().withTimeout(CONNECT_TIMEOUT_MS);
    try {
      await this.opts.closeOther(ctx, id);
    } finally {
      done();
    }
    this.opts.log.info('disconnected', { id });
  }

  /** The id of the held connection that `id` names at any hop of its path; `id` itself if none. */
  private heldIdAtAnyHop(id: string): string {
    if (this.held.has(id) || this.retrying.has(id)) return id;
    for (const [heldId, h] of this.held) {
      if (h.conn.path?.path_segments?.some((seg) => seg.id === id)) return heldId;
    }
    return id;
  }

  /**
   * Keeps a held connection's record following the connection as the server chain last
   * returned it (refresh, heal, reselect): feed it the agent's monitor events.
   */
  follow(event: ConnectionEvent): void {
    if (event.type !== 'UPDATE') return;
    for (const conn of Object.values(event.connections ?? {})) this.followOne(conn);
  }

  /** Stops retrying; with cleanup, closes every held connection first. */
  async stop(opts: { cleanup: boolean }): Promise<void> {
    for (const r of this.retrying.values()) r.cancel();
    if (opts.cleanup) {
      for (const id of [...this.held.keys(), ...this.retrying.keys()]) await this.disconnect(id).catch(() => {});
    }
    this.retrying.clear();
  }

  private followOne(serverConn: Connection): void {
    const segs = serverConn.path?.path_segments ?? [];
    const id = segs[0]?.id ?? '';
    const held = this.held.get(id);
    if (!held || (serverConn.path?.index ?? 0) !== 1 || stateName(serverConn.state) !== 'UP') return;
    held.conn = { ...serverConn, id, path: { index: 0, path_segments: segs } };
    // A refresh changes only tokens and expiries, which a replay makes anew: no write then.
    const what = JSON.stringify([held.conn.network_service_endpoint_name, held.conn.mechanism, held.conn.context, segs.map((x) => [x.name, x.id])]);
    if (what === held.recorded) return;
    held.recorded = what;
    this.record(id, held);
    this.opts.onChange?.(id, held);
  }

  private record(id: string, h: HeldConnection): void {
    this.opts.records.put(id, { url: h.url, netns: h.netns, ifname: h.ifname, created: h.created, conn: h.conn, endpoint: this.pinned.get(id) });
  }

  /** Retries a held connection's request with back-off until it succeeds or is disconnected. */
  private retry(id: string, url: string, netns: string, attempt: () => Promise<HeldConnection>): void {
    let delay = this.retryMs.minMs;
    let stop = () => {};
    let cancelled = false;
    const entry = {
      url,
      netns,
      cancel: () => {
        cancelled = true;
        stop();
      },
    };
    this.retrying.set(id, entry);
    const again = () => {
      attempt().then(
        () => {
          if (this.retrying.get(id) === entry) this.retrying.delete(id);
        },
        (err) => {
          if (cancelled || this.opts.signal.aborted) return;
          this.opts.log.warn('connection not established yet, retrying', { id, inMs: delay, error: AgentError.from(err).message });
          stop = this.opts.clock.after(delay, again);
          delay = Math.min(delay * 2, this.retryMs.maxMs);
        },
      );
    };
    stop = this.opts.clock.after(delay, again);
  }
}
