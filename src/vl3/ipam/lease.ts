/**
 * The client side of vl3-ipam, as a vL3 endpoint uses it (upstream NSM cmd-nse-vl3-vpp does the
 * same per prefix server URL): one ipam.IPAM/ManagePrefixes stream per server, opened with
 * ALLOCATE{prefix: the prefix held before}; the open stream is the lease, and ending it gives
 * the prefix back to the server.
 *
 * When the stream ends or the server cannot be reached, the lease reconnects with an
 * exponential back-off (initialMs doubling up to maxMs, each wait jittered by ±20 %), asking
 * for its previous prefix again, so a restarted server hands the same prefix back. The last
 * prefix is kept (`prefix`) while reconnecting; subscribers hear of a prefix when it is the
 * first or differs from the one before. A run of failures is logged once at warn when it
 * starts, then at most every failureLogIntervalMs with the count so far, and its end at info.
 */
import type * as grpc from '@grpc/grpc-js';
import { grpcJs } from '../../api/grpc-js';
import { api, CHANNEL_OPTIONS, type IPAMClient, type PrefixRequest, type PrefixResponse__Output } from '../../api';
import { realClock, type Clock } from '../../core/clock';
import { AgentError, fromStatus } from '../../core/errors';
import type { Logger } from '../../core/log';
import { formatPrefix, parseNetwork } from '../../networkservice/ipam/cidr';

/** How to reach one server: credentials (and channel options) for the gRPC client. */
export interface LeaseChannel {
  credentials: grpc.ChannelCredentials;
  options?: grpc.ChannelOptions;
}

export interface PrefixLeaseOptions {
  /** The vl3-ipam server: tcp://host:port or unix:///path. */
  url: string;
  /**
   * The credentials for the URL: for tcp://, the agent's mTLS (src/spire channelCredentials,
   * whose SpiffeChannel fits); undefined means plain, for unix:// sockets.
   */
  channel: (url: URL) => LeaseChannel | undefined;
  /** The prefix held before (e.g. before an agent restart), asked for at the first connect. */
  previous?: string;
  /** Sent with every ALLOCATE: prefixes the lease must not overlap. */
  excludePrefixes?: string[];
  log: Logger;
  /** Waits between attempts; default 200 ms doubling to 5 s. */
  backoff?: { initialMs: number; maxMs: number };
  /** How long one attempt waits for the connection; default 2 s. */
  dialTimeoutMs?: number;
  /** Milliseconds between warnings that a run of failures goes on; default 1 min. */
  failureLogIntervalMs?: number;
  clock?: Clock;
  /** A number in [0, 1) for the jitter; default Math.random. */
  random?: () => number;
}

export interface PrefixLeaseView {
  url: string;
  /** The current prefix ('' before the first). */
  prefix: string;
  /** leased: the stream is open and answered; connecting: first attempt or after a loss; retrying: after failures. */
  state: 'idle' | 'connecting' | 'leased' | 'retrying' | 'closed';
  /** Failed attempts in the current run (0 while leased). */
  failures: number;
  /** The last failure while not leased. */
  error: string;
}

type PrefixListener = (prefix: string, excluded: string[]) => void;
type Call = grpc.ClientDuplexStream<PrefixRequest, PrefixResponse__Output>;

/** A run of failed attempts. */
interface FailureRun {
  failures: number;
  lastWarnAt: number;
}

export class PrefixLease {
  private readonly target: URL;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly excludes: string[];
  private client: IPAMClient | undefined;
  private call: Call | undefined;
  private current: string | undefined;
  private excluded: string[] = [];
  /** What the next ALLOCATE asks for. */
  private wanted: string;
  private readonly listeners = new Set<PrefixListener>();
  private readonly waiters = new Set<{ resolve: (p: string) => void; reject: (e: Error) => void }>();
  private state: PrefixLeaseView['state'] = 'idle';
  private run: FailureRun | undefined;
  private lastError = '';
  /** Bumped on every attempt, so that late callbacks of an earlier one are ignored. */
  private attempt = 0;
  private stopTimer: () => void = () => {};

  /** Throws INVALID_ARGUMENT for a URL that is not tcp://host:port or unix:///path. */
  constructor(private readonly opts: PrefixLeaseOptions) {
    this.target = leaseUrl(opts.url);
    this.log = opts.log.with({ component: 'vl3-ipam-lease', url: opts.url });
    this.clock = opts.clock ?? realClock;
    this.random = opts.random ?? Math.random;
    this.initialMs = opts.backoff?.initialMs ?? 200;
    this.maxMs = Math.max(this.initialMs, opts.backoff?.maxMs ?? 5_000);
    this.excludes = [...(opts.excludePrefixes ?? [])];
    const previous = opts.previous ? parseNetwork(opts.previous) : undefined;
    if (opts.previous && !previous) this.log.warn('previous prefix is not a CIDR prefix; asking for any', { previous: opts.previous });
    this.wanted = previous ? formatPrefix(previous) : '';
  }

  /** Opens the stream (once); a closed lease stays closed. */
  start(): void {
    if (this.state !== 'idle') return;
    const ch = this.opts.channel(this.target);
    const Ctor = api().ipam.ipam.IPAM as unknown as new (target: string, creds: grpc.ChannelCredentials, options: grpc.ChannelOptions) => IPAMClient;
    this.client = new Ctor(grpcTarget(this.target), ch?.credentials ?? grpcJs.credentials.createInsecure(), {
      ...CHANNEL_OPTIONS,
      ...ch?.options,
      // A restarted server is found again within a second, whatever our own back-off.
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1_000,
      // The stream lives for ever: find a dead peer. Five minutes is the shortest interval a Go
      // gRPC server (upstream's vl3-ipam) accepts by default without closing the connection.
      'grpc.keepalive_time_ms': 300_000,
      'grpc.keepalive_timeout_ms': 20_000,
    });
    this.state = 'connecting';
    this.connect();
  }

  /** The current prefix, canonical; undefined until the first response. Kept while reconnecting. */
  get prefix(): string | undefined {
    return this.current;
  }

  /** The exclude_prefixes the server answered with the current prefix. */
  get excludedPrefixes(): string[] {
    return [...this.excluded];
  }

  /** Calls `cb` on every new prefix: the first one, and a different one after a reconnect. Returns the unsubscribe. */
  onPrefix(cb: PrefixListener): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /** Resolves with the current prefix, or the first one to come; rejects with CANCELLED on abort or close(). */
  ready(signal?: AbortSignal): Promise<string> {
    if (this.current !== undefined) return Promise.resolve(this.current);
    if (this.state === 'closed') return Promise.reject(new AgentError('CANCELLED', `prefix lease from ${this.opts.url} is closed`));
    if (signal?.aborted) return Promise.reject(new AgentError('CANCELLED', `waiting for a prefix from ${this.opts.url}: aborted`));
    return new Promise<string>((resolve, reject) => {
      const onAbort = () => {
        this.waiters.delete(w);
        reject(new AgentError('CANCELLED', `waiting for a prefix from ${this.opts.url}: aborted`));
      };
      const w = {
        resolve: (p: string) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(p);
        },
        reject: (e: Error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      this.waiters.add(w);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  view(): PrefixLeaseView {
    return { url: this.opts.url, prefix: this.current ?? '', state: this.state, failures: this.run?.failures ?? 0, error: this.state === 'leased' ? '' : this.lastError };
  }

  /** Ends the stream (the server frees the prefix) and stops reconnecting. */
  close(): void {
    if (this.state === 'closed') return;
    const wasLeased = this.state === 'leased';
    this.state = 'closed';
    this.attempt++;
    this.stopTimer();
    this.call?.cancel();
    this.call = undefined;
    this.client?.close();
    this.client = undefined;
    this.listeners.clear();
    for (const w of [...this.waiters]) w.reject(new AgentError('CANCELLED', `prefix lease from ${this.opts.url} is closed`));
    this.waiters.clear();
    if (wasLeased) this.log.info('prefix lease released', { prefix: this.current });
  }

  private connect(): void {
    const attempt = ++this.attempt;
    const client = this.client as IPAMClient;
    client.waitForReady(Date.now() + (this.opts.dialTimeoutMs ?? 2_000), (err) => {
      if (attempt !== this.attempt) return;
      if (err) return this.failed(new AgentError('UNAVAILABLE', `cannot reach vl3-ipam at ${this.opts.url}: ${err.message}`), false);
      this.open(attempt, client);
    });
  }

  private open(attempt: number, client: IPAMClient): void {
    const call = client.ManagePrefixes();
    this.call = call;
    let answered = false;
    call.on('data', (r: PrefixResponse__Output) => {
      if (attempt !== this.attempt) return;
      const net = parseNetwork(r.prefix);
      if (!net) {
        this.call = undefined;
        this.attempt++; // the status of the cancelled call is not ours to report
        call.cancel();
        return this.failed(new AgentError('INTERNAL', `vl3-ipam at ${this.opts.url} answered ${JSON.stringify(r.prefix)}, not a prefix`), answered);
      }
      answered = true;
      this.leased(formatPrefix(net), r.exclude_prefixes);
    });
    call.on('error', () => {}); // reported with the status
    call.on('status', (st: grpc.StatusObject) => {
      if (attempt !== this.attempt) return;
      this.call = undefined;
      const e =
        st.code === grpcJs.status.OK
          ? new AgentError('UNAVAILABLE', 'vl3-ipam ended the stream')
          : AgentError.wrap(fromStatus(st.code, st.details), `vl3-ipam at ${this.opts.url}`);
      this.failed(e, answered);
    });
    call.write({ type: 'ALLOCATE', prefix: this.wanted, exclude_prefixes: this.excludes });
  }

  private leased(prefix: string, excluded: string[]): void {
    const changed = prefix !== this.current || excluded.join(',') !== this.excluded.join(',');
    const before = this.current;
    this.current = prefix;
    this.excluded = [...excluded];
    this.wanted = prefix;
    this.state = 'leased';
    this.lastError = '';
    if (this.run) {
      this.log.info('prefix lease restored', { prefix, failures: this.run.failures, ...(before && before !== prefix ? { previous: before } : {}) });
      this.run = undefined;
    } else if (changed) {
      this.log.info('prefix leased', { prefix, ...(this.opts.previous ? { asked: this.opts.previous } : {}) });
    }
    for (const w of [...this.waiters]) w.resolve(prefix);
    this.waiters.clear();
    if (!changed) return;
    for (const cb of [...this.listeners]) {
      try {
        cb(prefix, [...excluded]);
      } catch (err) {
        this.log.error('prefix subscriber failed', { prefix, error: err });
      }
    }
  }

  /** Records a failed attempt (or the loss of a working lease) and schedules the next. */
  private failed(err: AgentError, lost: boolean): void {
    if (this.state === 'closed') return;
    const now = this.clock.now();
    this.lastError = err.message;
    if (!this.run) {
      this.run = { failures: 1, lastWarnAt: now };
      this.state = lost ? 'connecting' : 'retrying';
      if (lost) this.log.warn('prefix lease lost; reconnecting with back-off', { prefix: this.current, error: err.message });
      else this.log.warn('cannot lease a prefix; retrying with back-off', { code: err.code, error: err.message });
    } else {
      this.run.failures++;
      this.state = 'retrying';
      if (now - this.run.lastWarnAt >= (this.opts.failureLogIntervalMs ?? 60_000)) {
        this.run.lastWarnAt = now;
        this.log.warn('still cannot lease a prefix; retrying with back-off', { failures: this.run.failures, code: err.code, error: err.message });
      }
    }
    const n = this.run.failures;
    const base = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(n - 1, 30));
    this.stopTimer = this.clock.after(Math.round(base * (0.8 + 0.4 * this.random())), () => {
      if (this.state !== 'closed') this.connect();
    });
  }
}

/** Parses a vl3-ipam URL: tcp://host:port or unix:///path. */
function leaseUrl(text: string): URL {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new AgentError('INVALID_ARGUMENT', `vl3-ipam URL ${JSON.stringify(text)} is not a URL (want tcp://host:port or unix:///path)`);
  }
  if ((u.protocol === 'tcp:' && u.hostname && u.port) || (u.protocol === 'unix:' && u.pathname.length > 1 && !u.host)) return u;
  throw new AgentError('INVALID_ARGUMENT', `vl3-ipam URL ${JSON.stringify(text)}: want tcp://host:port or unix:///path`);
}

function grpcTarget(url: URL): string {
  return url.protocol === 'unix:' ? `unix://${url.pathname}` : url.host;
}
