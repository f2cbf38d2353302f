/**
 * The tail of the client chain to remote hops: sends Request/Close over gRPC to the URL that
 * discover/select put in the Ctx (tcp://host:port or unix:///path), with this hop's NSM token
 * in the `nsm-client-token` / `nsm-client-token-expires` headers and the Ctx's deadline.
 *
 * One channel per URL, shared by every connection to it and closed with the pool; the
 * MonitorConnections streams (ChannelPool.monitor, for heal and the downstream monitor) go
 * over the same channel, hence the same mTLS credentials. A peer
 * that cannot be reached within the dial timeout is UNAVAILABLE naming the URL; statuses the
 * peer returns keep their code, with the URL added to the message.
 */
import type * as grpc from '@grpc/grpc-js';
import { grpcJs } from '../../api/grpc-js';
import { CHANNEL_OPTIONS, api, type Connection, type ConnectionEvent, type MonitorScopeSelector, type NetworkServiceRequest } from '../../api';
import { rfc3339Nano } from '../../api/time';
import type { Ctx } from '../../core/ctx';
import { AgentError, COMPONENT, fromStatus, plainGrpcDetails } from '../../core/errors';
import type { NetworkServiceClient } from '../../core/networkservice';
import { clientURL } from '../../networkservice/clienturl';
import { TRACE_CONTEXT } from '../../core/trace';
import { INCOMING_TOKEN } from '../../core/token';
import { SERVER_PEER, type SpiffeChannel } from '../../spire';

type NsStub = grpc.Client & {
  Request(req: NetworkServiceRequest, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Connection) => void): grpc.ClientUnaryCall;
  Close(conn: Connection, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null) => void): grpc.ClientUnaryCall;
};

export interface DialOptions {
  /**
   * mTLS per target (src/spire channelCredentials): it authenticates the server and sends this
   * hop's token, signed for that server, on every call. Undefined: plain (unix sockets), and
   * the token from the Ctx is sent as is.
   */
  credentials?: (url: URL) => SpiffeChannel | undefined;
  /** How long to wait for a channel to become ready (default 2 s). */
  dialTimeoutMs?: number;
}

/** The gRPC target for an NSM URL. */
export function grpcTarget(url: URL): string {
  if (url.protocol === 'tcp:') return url.host;
  if (url.protocol === 'unix:') return `unix://${url.pathname}`;
  throw new AgentError('INVALID_ARGUMENT', `cannot dial ${url.href}: only tcp:// and unix:// URLs are supported`);
}

type MonitorStub = grpc.Client & {
  MonitorConnections(selector: MonitorScopeSelector, md: grpc.Metadata, opts?: grpc.CallOptions): grpc.ClientReadableStream<ConnectionEvent>;
};

interface Dialed {
  stub: NsStub;
  tls?: SpiffeChannel;
  /** MonitorConnection on the stub's channel, made at the first monitor(). */
  monitor?: MonitorStub;
}

export class ChannelPool {
  private readonly clients = new Map<string, Dialed>();
  private readonly streams = new Set<() => void>();
  constructor(private readonly opts: DialOptions = {}) {}

  get(url: URL): Dialed {
    const key = url.href;
    let d = this.clients.get(key);
    if (!d) {
      const Ctor = api().ns.networkservice.NetworkService as unknown as typeof grpc.Client;
      const tls = this.opts.credentials?.(url);
      const stub = new Ctor(grpcTarget(url), tls?.credentials ?? grpcJs.credentials.createInsecure(), {
        ...CHANNEL_OPTIONS,
        ...tls?.options,
        'grpc.keepalive_time_ms': 30_000,
        // A peer that restarts is found again within 400 ms (heal retries ride on this).
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 400,
      }) as NsStub;
      d = tls ? { stub, tls } : { stub };
      this.clients.set(key, d);
    }
    return d;
  }

  /** Waits until the channel to `url` is ready, up to the dial timeout and the Ctx's deadline. */
  async ready(ctx: Ctx, url: URL): Promise<Dialed> {
    const d = this.get(url);
    const c = d.stub;
    const limit = Math.min(Date.now() + (this.opts.dialTimeoutMs ?? 2_000), ctx.deadline ?? Infinity);
    await new Promise<void>((resolve, reject) => {
      c.waitForReady(limit, (err) => {
        if (err) reject(new AgentError('UNAVAILABLE', `cannot reach ${url.href}: ${plainGrpcDetails(err.message)}`, { cause: err, component: COMPONENT.agent(url.href) }));
        else resolve();
      });
    });
    return d;
  }

  /**
   * Opens connection.MonitorConnection/MonitorConnections on the channel to `url` (the one
   * Requests use). onError gets the status the stream ended with as an AgentError; an end
   * without error, or a cancellation by the peer (a grpc-js server shutting down), is
   * UNAVAILABLE. It is never called after the returned function, which cancels the call, was
   * called (nor after the pool was closed), so it never reports CANCELLED.
   */
  monitor(
    url: URL,
    selector: MonitorScopeSelector,
    onEvent: (e: ConnectionEvent) => void,
    onError: (err: AgentError) => void,
  ): () => void {
    const d = this.get(url);
    const Ctor = api().ns.connection.MonitorConnection as unknown as typeof grpc.Client;
    // channelOverride: the NetworkService stub's channel (its mTLS credentials, its connection).
    d.monitor ??= new Ctor(grpcTarget(url), d.tls?.credentials ?? grpcJs.credentials.createInsecure(), {
      channelOverride: d.stub.getChannel(),
    }) as MonitorStub;
    const where = url.host || url.pathname;
    let done = false;
    const call = d.monitor.MonitorConnections(selector, new grpcJs.Metadata());
    const cancel = () => {
      if (done) return;
      done = true;
      this.streams.delete(cancel);
      call.cancel();
    };
    this.streams.add(cancel);
    call.on('data', (e: ConnectionEvent) => {
      if (!done) onEvent(e);
    });
    call.on('error', () => {}); // reported with the status
    call.on('status', (st: grpc.StatusObject) => {
      if (done) return;
      done = true;
      this.streams.delete(cancel);
      // Our own cancel is never reported, so CANCELLED here is the peer's doing (a grpc-js
      // server's forceShutdown): the peer went away, as UNAVAILABLE says.
      const e =
        st.code === grpcJs.status.OK || st.code === grpcJs.status.CANCELLED
          ? new AgentError('UNAVAILABLE', st.code === grpcJs.status.OK ? 'monitor stream ended' : `monitor stream cancelled by the peer: ${st.details}`)
          : fromStatus(st.code, st.details);
      onError(new AgentError(e.code, `${where}: ${e.message}`));
    });
    return cancel;
  }

  close(): void {
    for (const cancel of [...this.streams]) cancel();
    for (const d of this.clients.values()) grpcJs.Client.prototype.close.call(d.stub);
    this.clients.clear();
  }
}

/** Token headers for a plain channel (an mTLS channel's credentials add their own), and the trace context. */
function metadataOf(ctx: Ctx, d: Dialed): grpc.Metadata {
  const md = new grpcJs.Metadata();
  const t = ctx.get(INCOMING_TOKEN);
  if (t && !d.tls) {
    md.set('nsm-client-token', t.token);
    md.set('nsm-client-token-expires', rfc3339Nano(t.expires));
  }
  const trace = ctx.get(TRACE_CONTEXT);
  if (trace) {
    md.set('traceparent', trace.traceparent);
    if (trace.tracestate) md.set('tracestate', trace.tracestate);
  }
  return md;
}

function call<T>(
  ctx: Ctx,
  url: URL,
  d: Dialed,
  start: (md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: T) => void) => grpc.ClientUnaryCall,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const opts: grpc.CallOptions = ctx.deadline !== undefined ? { deadline: ctx.deadline } : {};
    const onAbort = () => c.cancel();
    const c = start(metadataOf(ctx, d), opts, (err, res) => {
      ctx.signal.removeEventListener('abort', onAbort);
      // The server this call reached, for the authorize client (its token must be signed by it).
      const slot = ctx.get(SERVER_PEER);
      if (slot && d.tls) slot.peer = d.tls.peer();
      if (err) reject(remoteError(err, url));
      else resolve(res as T);
    });
    ctx.signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * An error the next hop answered with: its code, and the component it names, placed at that
 * hop (`the kernel` there is `the kernel at tcp://host:port`); none named is the agent at URL.
 */
export function remoteError(err: unknown, url: URL): AgentError {
  const e = AgentError.from(err);
  const at = COMPONENT.agent(url.href);
  const component = !e.component ? at : e.component === COMPONENT.kernel ? `${COMPONENT.kernel} at ${url.href}` : e.component;
  return new AgentError(e.code, e.message, { cause: err, component });
}

function urlOf(ctx: Ctx): URL {
  const url = clientURL(ctx);
  if (!url) throw new AgentError('INTERNAL', 'dial: no next-hop URL in the context');
  return url;
}

export function dialClient(pool: ChannelPool): NetworkServiceClient {
  return {
    async request(ctx, req) {
      const url = urlOf(ctx);
      const d = await pool.ready(ctx, url);
      return call<Connection>(ctx, url, d, (md, opts, cb) => d.stub.Request(req, md, opts, cb));
    },
    async close(ctx, conn) {
      const url = urlOf(ctx);
      const d = await pool.ready(ctx, url);
      await call<unknown>(ctx, url, d, (md, opts, cb) => d.stub.Close(conn, md, opts, cb));
    },
  };
}
