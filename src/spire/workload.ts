/**
 * SPIFFE Workload API client (the SPIFFE Workload Endpoint and Workload API standards): gRPC without TLS on the endpoint from
 * `SPIFFE_ENDPOINT_SOCKET` (or configuration), the mandatory `workload.spiffe.io: true` header on
 * every call, the FetchX509SVID and FetchX509Bundles streams, and the X509Source kept current
 * by the first.
 *
 * Stream rules (as go-spiffe's workloadapi client):
 * - every message is the complete state: the source replaces its state with each accepted one
 *   (an SVID or federated bundle missing from a later message is gone);
 * - a message with a mandatory field missing, or an SVID that fails validation, is reported
 *   and discarded: the previous state stays;
 * - a stream that ends, cleanly or with UNAVAILABLE, PERMISSION_DENIED, UNKNOWN, INTERNAL or
 *   DEADLINE_EXCEEDED, is reopened after an exponential back-off (initial 1 s, doubling, capped
 *   at 30 s, ±20 % jitter), reset after any good message;
 * - PERMISSION_DENIED also revokes the state: the identity must not be presented any more;
 * - any other code (INVALID_ARGUMENT, UNIMPLEMENTED, ...) is final: no retry, `ready()` fails.
 */
import path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { grpcJs } from '../api/grpc-js';
import type * as ProtoLoader from '@grpc/proto-loader';
import { CHANNEL_OPTIONS, LOADER_OPTIONS } from '../api';
import type { ProtoGrpcType } from '../api/gen/workload';
import type { SpiffeWorkloadAPIClient } from '../api/gen/SpiffeWorkloadAPI';
import type { X509SVIDResponse__Output } from '../api/gen/X509SVIDResponse';
import type { X509BundlesResponse__Output } from '../api/gen/X509BundlesResponse';
import { Clock, realClock } from '../core/clock';
import { AgentError, fromStatus } from '../core/errors';
import { Logger, silentLogger } from '../core/log';
import { trustDomainName } from './id';
import { ENDPOINT_ENV, endpointTarget } from './endpoint';

export { ENDPOINT_ENV, endpointTarget };
import { BaseX509Source, SourceOptions } from './source';
import { bundleFromDer, svidFromDer, X509Context, X509Svid } from './svid';
import type { X509Certificate } from 'node:crypto';

export const SECURITY_HEADER = 'workload.spiffe.io';

/** Codes after which a stream is reopened; OK is a clean end by the server. (Numbers: grpc-js is loaded on first use.) */
export const RETRY_CODES: ReadonlySet<grpc.status> = new Set([
  0 /* OK */, 14 /* UNAVAILABLE */, 7 /* PERMISSION_DENIED */, 2 /* UNKNOWN */, 13 /* INTERNAL */, 4 /* DEADLINE_EXCEEDED */,
]);


let loaded: ProtoGrpcType | undefined;
/** proto/spiffe sits two levels above both src/spire and dist/spire. */
function proto(): ProtoGrpcType {
  if (!loaded) {
    const protoLoader = require('@grpc/proto-loader') as typeof ProtoLoader;
    const defs = protoLoader.loadSync('workload.proto', {
      ...LOADER_OPTIONS,
      includeDirs: [path.resolve(__dirname, '..', '..', 'proto', 'spiffe')],
    });
    loaded = grpcJs.loadPackageDefinition(defs) as unknown as ProtoGrpcType;
  }
  return loaded;
}

/** The service definition, for servers (the test double) that serve the same proto. */
export function workloadServiceDefinition(): grpc.ServiceDefinition {
  return proto().SpiffeWorkloadAPI.service;
}

export function securityMetadata(): grpc.Metadata {
  const md = new grpcJs.Metadata();
  md.set(SECURITY_HEADER, 'true');
  return md;
}

const invalid = (msg: string) => new AgentError('INVALID_ARGUMENT', msg);

/**
 * An X509SVIDResponse as an X509Context. Throws INVALID_ARGUMENT (the message must be
 * discarded) when a mandatory field is empty or an SVID or bundle does not validate.
 */
export function decodeX509SvidResponse(msg: X509SVIDResponse__Output): X509Context {
  if (!msg.svids?.length) throw invalid('X509SVIDResponse without SVIDs');
  const svids: X509Svid[] = [];
  const bundles = new Map<string, readonly X509Certificate[]>();
  const hints = new Set<string>();
  for (const s of msg.svids) {
    if (!s.bundle?.length) throw invalid(`X509SVIDResponse: the SVID of ${s.spiffe_id || '(no id)'} has no bundle`);
    const svid = svidFromDer(s.spiffe_id, s.x509_svid, s.x509_svid_key, s.hint ?? '');
    // Two SVIDs with one non-empty hint: the first wins (as go-spiffe).
    if (svid.hint && hints.has(svid.hint)) continue;
    if (svid.hint) hints.add(svid.hint);
    svids.push(svid);
    if (!bundles.has(svid.trustDomain)) bundles.set(svid.trustDomain, bundleFromDer(svid.trustDomain, s.bundle));
  }
  for (const [key, der] of Object.entries(msg.federated_bundles ?? {})) {
    const td = trustDomainName(key);
    if (bundles.has(td)) continue; // never let a "federated" entry replace an own trust domain
    if (!der?.length) continue; // an empty entry: that bundle is gone
    bundles.set(td, bundleFromDer(td, der));
  }
  return { svids, bundles };
}

/** An X509BundlesResponse as trust domain → authorities; the map is mandatory and non-empty. */
export function decodeX509BundlesResponse(msg: X509BundlesResponse__Output): Map<string, readonly X509Certificate[]> {
  const entries = Object.entries(msg.bundles ?? {});
  if (!entries.length) throw invalid('X509BundlesResponse without bundles');
  const out = new Map<string, readonly X509Certificate[]>();
  for (const [key, der] of entries) {
    const td = trustDomainName(key);
    if (!der?.length) throw invalid(`X509BundlesResponse: empty bundle for ${td}`);
    out.set(td, bundleFromDer(td, der));
  }
  return out;
}

export interface BackoffOptions {
  /** First wait, ms (default 1000). */
  initialMs?: number;
  /** Longest wait, ms (default 30000). */
  maxMs?: number;
}

export interface WorkloadClientOptions {
  /** `unix:///path`, `unix:/path` or `tcp://IP:port`; default: $SPIFFE_ENDPOINT_SOCKET. */
  address?: string;
  backoff?: BackoffOptions;
  clock?: Clock;
  log?: Logger;
}

export interface WatchHandlers<T> {
  /** A good message, decoded. */
  update(value: T): void;
  /**
   * A problem: a discarded message (`retrying` false, the stream goes on) or a stream that
   * ended and will be reopened (`retrying` true, with the status as an AgentError).
   */
  problem?(err: AgentError, retrying: boolean): void;
}

type StreamMethod = 'FetchX509SVID' | 'FetchX509Bundles';

/** One Workload API connection; safe to share between watches. */
export class WorkloadApiClient {
  readonly target: string;
  private readonly client: SpiffeWorkloadAPIClient;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly life = new AbortController();

  constructor(opts: WorkloadClientOptions = {}) {
    this.target = endpointTarget(opts.address ?? process.env[ENDPOINT_ENV]);
    this.clock = opts.clock ?? realClock;
    this.log = opts.log ?? silentLogger;
    this.initialMs = opts.backoff?.initialMs ?? 1000;
    this.maxMs = opts.backoff?.maxMs ?? 30_000;
    this.client = new (proto().SpiffeWorkloadAPI)(this.target, grpcJs.credentials.createInsecure(), {
      ...CHANNEL_OPTIONS,
      'grpc.enable_retries': 0,
      // The channel's own reconnect back-off (grpc-js default: up to 120 s) must not outlast
      // ours, or a restarted SPIRE agent would be noticed late.
      'grpc.initial_reconnect_backoff_ms': this.initialMs,
      'grpc.max_reconnect_backoff_ms': this.maxMs,
    }) as unknown as SpiffeWorkloadAPIClient;
  }

  /** Watches FetchX509SVID until `signal` aborts (resolves) or a final error (rejects). */
  watchX509Context(handlers: WatchHandlers<X509Context>, signal?: AbortSignal): Promise<void> {
    return this.watch('FetchX509SVID', decodeX509SvidResponse, handlers, signal);
  }

  /** Watches FetchX509Bundles, with the same rules. */
  watchX509Bundles(handlers: WatchHandlers<Map<string, readonly X509Certificate[]>>, signal?: AbortSignal): Promise<void> {
    return this.watch('FetchX509Bundles', decodeX509BundlesResponse, handlers, signal);
  }

  /** The first good X509SVIDResponse of one stream (no retry); for one-shot tools. */
  fetchX509Context(signal?: AbortSignal): Promise<X509Context> {
    return this.fetchFirst('FetchX509SVID', decodeX509SvidResponse, signal);
  }

  fetchX509Bundles(signal?: AbortSignal): Promise<Map<string, readonly X509Certificate[]>> {
    return this.fetchFirst('FetchX509Bundles', decodeX509BundlesResponse, signal);
  }

  /** Cancels every stream and closes the channel. */
  close(): void {
    this.life.abort(new AgentError('CANCELLED', 'the Workload API client is closed'));
    this.client.close();
  }

  private open(method: StreamMethod): grpc.ClientReadableStream<unknown> {
    const fn = this.client[method] as unknown as (req: object, md: grpc.Metadata) => grpc.ClientReadableStream<unknown>;
    return fn.call(this.client, {}, securityMetadata());
  }

  /**
   * One stream: every message goes to `onMessage`; resolves with the final status. Aborting
   * `signal` cancels the call.
   */
  private runStream(method: StreamMethod, onMessage: (m: unknown) => void, signal: AbortSignal): Promise<grpc.StatusObject> {
    return new Promise((resolve) => {
      const call = this.open(method);
      const onAbort = () => call.cancel();
      signal.addEventListener('abort', onAbort, { once: true });
      call.on('data', onMessage);
      call.on('error', () => {}); // the status below carries the same information
      call.on('status', (st: grpc.StatusObject) => {
        signal.removeEventListener('abort', onAbort);
        resolve(st);
      });
    });
  }

  private combined(signal?: AbortSignal): [AbortSignal, () => void] {
    if (!signal) return [this.life.signal, () => {}];
    const ac = new AbortController();
    const onAbort = () => ac.abort(signal.aborted ? signal.reason : this.life.signal.reason);
    if (signal.aborted || this.life.signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    this.life.signal.addEventListener('abort', onAbort, { once: true });
    return [
      ac.signal,
      () => {
        signal.removeEventListener('abort', onAbort);
        this.life.signal.removeEventListener('abort', onAbort);
      },
    ];
  }

  private async watch<T>(
    method: StreamMethod,
    decode: (m: never) => T,
    handlers: WatchHandlers<T>,
    outer?: AbortSignal,
  ): Promise<void> {
    const [signal, release] = this.combined(outer);
    let delay = this.initialMs;
    try {
      while (!signal.aborted) {
        const st = await this.runStream(
          method,
          (m) => {
            let value: T;
            try {
              value = decode(m as never);
            } catch (err) {
              handlers.problem?.(AgentError.from(err, 'INVALID_ARGUMENT'), false);
              return;
            }
            delay = this.initialMs; // a good message resets the back-off
            handlers.update(value);
          },
          signal,
        );
        if (signal.aborted) return;
        const err =
          st.code === grpcJs.status.OK
            ? new AgentError('UNAVAILABLE', `${method}: the Workload API ended the stream`)
            : fromStatus(st.code, `${method}: ${st.details || grpcJs.status[st.code]}`);
        if (!RETRY_CODES.has(st.code)) throw err;
        const wait = Math.round(delay * (0.8 + Math.random() * 0.4));
        this.log.debug('Workload API stream ended, reopening', { method, code: grpcJs.status[st.code], details: st.details, waitMs: wait });
        handlers.problem?.(err, true);
        await this.sleep(wait, signal);
        delay = Math.min(delay * 2, this.maxMs);
      }
    } finally {
      release();
    }
  }

  private sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const stop = this.clock.after(ms, () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      });
      const onAbort = () => {
        stop();
        resolve();
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  private async fetchFirst<T>(method: StreamMethod, decode: (m: never) => T, outer?: AbortSignal): Promise<T> {
    const [signal, release] = this.combined(outer);
    const ac = new AbortController();
    const onAbort = () => ac.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    let result: { value: T } | undefined;
    let bad: AgentError | undefined;
    try {
      const st = await this.runStream(
        method,
        (m) => {
          if (result) return;
          try {
            result = { value: decode(m as never) };
          } catch (err) {
            bad = AgentError.from(err, 'INVALID_ARGUMENT');
          }
          ac.abort();
        },
        ac.signal,
      );
      if (result) return result.value;
      if (bad) throw bad;
      if (signal.aborted) throw AgentError.from(signal.reason ?? new AgentError('CANCELLED', 'cancelled'), 'CANCELLED');
      if (st.code === grpcJs.status.OK) throw new AgentError('UNAVAILABLE', `${method}: the stream ended without a message`);
      throw fromStatus(st.code, `${method}: ${st.details || grpcJs.status[st.code]}`);
    } finally {
      signal.removeEventListener('abort', onAbort);
      release();
    }
  }
}

/** The agent's identity from the Workload API, kept current by the FetchX509SVID stream. */
export class WorkloadX509Source extends BaseX509Source {
  readonly kind = 'spiffe' as const;
  private readonly client: WorkloadApiClient;
  private readonly stop = new AbortController();
  private readonly done: Promise<void>;

  constructor(opts: WorkloadClientOptions & SourceOptions = {}) {
    super(opts);
    this.client = new WorkloadApiClient(opts);
    this.done = this.client
      .watchX509Context(
        {
          update: (ctx) => this.accept(ctx),
          problem: (err, retrying) => {
            if (retrying && err.code === 'PERMISSION_DENIED') this.revoke(err);
            else this.report(err);
          },
        },
        this.stop.signal,
      )
      .catch((err: unknown) => this.fail(AgentError.from(err)));
  }

  get target(): string {
    return this.client.target;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.markClosed();
    this.stop.abort();
    await this.done;
    this.client.close();
  }
}
