/**
 * Stand-ins for upstream NSM's interdomain servers, built only from upstream's protos
 * (test/helpers/upstream-nsm.ts), recording what they receive as upstream's code decodes it:
 *
 * - UpstreamRegistry: another domain's registry, as registry-proxy-dns reaches it (names
 *   without `@domain`): one network service served by one endpoint at a given URL; it accepts
 *   any registration (a floating endpoint's) and records it.
 * - UpstreamNsmgrProxy: an nsmgr-proxy. As upstream's does, it takes the path on (updatepath:
 *   its own segment after the caller's; updatetoken: the caller's token from the call's metadata
 *   on the caller's segment, its own on its own), strips its `domain` from the NS and NSE names
 *   (interdomainbypass on the remote side) and restores them in the answer; names of other
 *   domains pass unchanged (the client side's proxy). It sends every Request and Close on to one
 *   agent (`next`), over mTLS with its identity and its token.
 *
 * Serve `.server` with listenMtls; close() closes the proxy's client.
 */
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { X509Source } from '../../src/spire';
// ./channel directly: the barrel's lazy require() of it works in the built agent, not under vitest
import { channelCredentials } from '../../src/spire/channel';
import { SpiffeTokenSource, TOKEN_EXPIRES_HEADER, TOKEN_HEADER, decodeJwt, type JwtClaims } from '../../src/spire/token';
import {
  UpstreamNetworkService,
  UpstreamNseRegistry,
  UpstreamNsRegistry,
  type UpConnection,
  type UpNetworkService,
  type UpNse,
  type UpRequest,
} from './upstream-nsm';

/* eslint-disable @typescript-eslint/no-explicit-any */

/** grpc-js gives upstream's clients a `close` for the RPC Close: the channel's own is Client's. */
export function closeClient(c: grpc.Client): void {
  grpc.Client.prototype.close.call(c);
}

/** `name@domain` → [name, domain]. */
function split(n: string): [string, string | undefined] {
  const i = n.lastIndexOf('@');
  return i < 0 ? [n, undefined] : [n.slice(0, i), n.slice(i + 1)];
}

/** Go's time.RFC3339Nano layout, as time.Parse accepts it. */
const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/;

function claimsOf(md: grpc.Metadata): JwtClaims | undefined {
  const t = md.get(TOKEN_HEADER)[0];
  return typeof t === 'string' ? decodeJwt(t).claims : undefined;
}

export class UpstreamRegistry {
  readonly nsQueries: { network_service: UpNetworkService; watch: boolean }[] = [];
  readonly nseQueries: { network_service_endpoint: UpNse; watch: boolean }[] = [];
  /** Register and Unregister calls, with the `path` metadata header (sdk grpcmetadata) as sent. */
  readonly registrations: { call: 'ns.Register' | 'ns.Unregister' | 'nse.Register' | 'nse.Unregister'; message: any; path: string | undefined }[] = [];
  readonly server = new grpc.Server();

  constructor(opts: { service: string; endpoint: string; url: string }) {
    const answer = (call: grpc.ServerWritableStream<any, any>, items: unknown[]) => {
      for (const i of items) call.write(i);
      // a watch stays open until the caller goes
      if (call.request.watch) call.on('cancelled', () => call.end());
      else call.end();
    };
    const nse = () => ({
      name: opts.endpoint,
      network_service_names: [opts.service],
      url: opts.url,
      expiration_time: { seconds: Math.floor(Date.now() / 1000) + 3600, nanos: 0 },
    });
    const record = (kind: UpstreamRegistry['registrations'][number]['call'], reply: (m: any) => unknown) => (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => {
      const path = call.metadata.get('path')[0];
      this.registrations.push({ call: kind, message: call.request, path: typeof path === 'string' ? path : undefined });
      cb(null, reply(call.request));
    };
    this.server.addService(UpstreamNsRegistry.service, {
      Find: (call: grpc.ServerWritableStream<any, any>) => {
        this.nsQueries.push(call.request);
        const name: string = call.request.network_service?.name ?? '';
        answer(call, name === '' || name === opts.service ? [{ network_service: { name: opts.service, payload: 'IP' } }] : []);
      },
      Register: record('ns.Register', (m) => m),
      Unregister: record('ns.Unregister', () => ({})),
    });
    this.server.addService(UpstreamNseRegistry.service, {
      Find: (call: grpc.ServerWritableStream<any, any>) => {
        this.nseQueries.push(call.request);
        const q = call.request.network_service_endpoint ?? {};
        const fits = (!q.name || q.name === opts.endpoint) && (q.network_service_names ?? []).every((s: string) => s === opts.service);
        answer(call, fits ? [{ network_service_endpoint: nse() }] : []);
      },
      // as upstream's expire server: the registry chooses the expiry when none is sent
      Register: record('nse.Register', (m) => ({ ...m, expiration_time: m.expiration_time ?? { seconds: Math.floor(Date.now() / 1000) + 60, nanos: 0 } })),
      Unregister: record('nse.Unregister', () => ({})),
    });
  }
}

/** One Request or Close through the proxy. */
export interface Relayed {
  /** As the proxy received it. */
  received: UpRequest | UpConnection;
  /** The claims of the caller's token (gRPC metadata), which updatetoken puts in the path. */
  token?: JwtClaims | undefined;
  /** As the proxy passed it on. */
  sent?: UpConnection;
  /** The answer as it came back to the proxy, and as the proxy answered the caller. */
  answer?: UpConnection;
  replied?: UpConnection;
  error?: string;
  /** Why upstream's updatetoken would not take the caller's token from the metadata. */
  tokenError?: string;
}

export class UpstreamNsmgrProxy {
  readonly requests: Relayed[] = [];
  readonly closes: Relayed[] = [];
  readonly server = new grpc.Server();
  private readonly next: grpc.Client & Record<string, any>;
  private readonly tokens: SpiffeTokenSource;

  constructor(private readonly opts: { identity: X509Source; segment: string; domain: string; next: string }) {
    this.tokens = new SpiffeTokenSource(opts.identity, 600_000);
    this.next = new UpstreamNetworkService(opts.next, channelCredentials(opts.identity, { tokens: this.tokens }).credentials);
    this.server.addService(UpstreamNetworkService.service, {
      Request: (call: grpc.ServerUnaryCall<UpRequest, UpConnection>, cb: grpc.sendUnaryData<UpConnection>) => {
        const seen: Relayed = { received: call.request, token: claimsOf(call.metadata) };
        this.requests.push(seen);
        let onward: { conn: UpConnection; index: number };
        try {
          onward = this.onward(call.request.connection!, call.metadata, seen);
        } catch (err) {
          seen.error = (err as Error).message;
          return cb({ code: grpc.status.INVALID_ARGUMENT, details: seen.error });
        }
        const { conn, index } = onward;
        seen.sent = conn;
        const req = { connection: conn, mechanism_preferences: call.request.mechanism_preferences };
        this.next['Request'](req, { deadline: Date.now() + 15_000 }, (err: grpc.ServiceError | null, res: UpConnection) => {
          if (err) {
            seen.error = err.message;
            return cb(err);
          }
          seen.answer = res;
          seen.replied = this.back(res, call.request.connection!, index);
          cb(null, seen.replied);
        });
      },
      Close: (call: grpc.ServerUnaryCall<UpConnection, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        const seen: Relayed = { received: call.request, token: claimsOf(call.metadata) };
        this.closes.push(seen);
        let conn: UpConnection;
        try {
          conn = this.onward(call.request, call.metadata, seen).conn;
        } catch (err) {
          seen.error = (err as Error).message;
          return cb({ code: grpc.status.INVALID_ARGUMENT, details: seen.error });
        }
        seen.sent = conn;
        this.next['Close'](conn, { deadline: Date.now() + 15_000 }, (err: grpc.ServiceError | null) => {
          if (err) seen.error = err.message;
          cb(err, {});
        });
      },
    });
  }

  close(): void {
    closeClient(this.next);
  }

  /**
   * The connection as this proxy passes it on, and the caller's path index. Refuses what
   * upstream's updatepath refuses (an index past the path, a connection id other than the
   * caller's segment's); takes the caller's token only as upstream's token.FromContext does
   * (exactly one `nsm-client-token` and one RFC 3339 `nsm-client-token-expires`), else records
   * why in `tokenError`.
   */
  private onward(conn: UpConnection, md: grpc.Metadata, seen: Relayed): { conn: UpConnection; index: number } {
    const out: UpConnection = structuredClone(conn);
    const [ns, nsDomain] = split(out.network_service);
    const [nse, nseDomain] = split(out.network_service_endpoint_name);
    if (nsDomain === this.opts.domain) out.network_service = ns;
    if (nseDomain === this.opts.domain) out.network_service_endpoint_name = nse;
    const path = out.path ?? { index: 0, path_segments: [] };
    const index = path.index;
    const caller = path.path_segments[index];
    if (!caller) throw new Error(`path index ${index} is past the path (${path.path_segments.length} segments)`);
    if (caller.id !== out.id) throw new Error(`the current path segment's id ${caller.id} is not the connection's id ${out.id}`);
    const tokens = md.get(TOKEN_HEADER);
    const expires = md.get(TOKEN_EXPIRES_HEADER);
    if (tokens.length !== 1 || expires.length !== 1) {
      seen.tokenError = `${tokens.length} ${TOKEN_HEADER} and ${expires.length} ${TOKEN_EXPIRES_HEADER} values, upstream wants one each`;
    } else if (!RFC3339.test(String(expires[0])) || Number.isNaN(Date.parse(String(expires[0])))) {
      seen.tokenError = `${TOKEN_EXPIRES_HEADER} ${String(expires[0])} is not RFC 3339`;
    } else {
      caller.token = String(tokens[0]);
      const ms = Date.parse(String(expires[0]));
      caller.expires = { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
    }
    if (path.path_segments[index + 1]?.name !== this.opts.segment) {
      path.path_segments = [...path.path_segments.slice(0, index + 1), { name: this.opts.segment, id: randomUUID(), token: '', expires: null, metrics: {} }];
    }
    const own = path.path_segments[index + 1]!;
    // addressed to the caller, as upstream's updatetoken addresses its own token to its peer
    const sub = claimsOf(md)?.sub;
    const t = this.tokens.generate(Date.now(), typeof sub === 'string' ? sub : undefined);
    own.token = t.token;
    own.expires = { seconds: Math.floor(t.expires / 1000), nanos: 0 };
    path.index = index + 1;
    out.path = path;
    out.id = own.id;
    return { conn: out, index };
  }

  /** The answer as the caller gets it: names restored, the path at the caller's index. */
  private back(answer: UpConnection, sent: UpConnection, index: number): UpConnection {
    const out: UpConnection = structuredClone(answer);
    const [, nsDomain] = split(sent.network_service);
    const [, nseDomain] = split(sent.network_service_endpoint_name);
    const d = this.opts.domain;
    if (nsDomain === d && split(out.network_service)[1] === undefined) out.network_service += `@${d}`;
    if (nseDomain === d && split(out.network_service_endpoint_name)[1] === undefined) out.network_service_endpoint_name += `@${d}`;
    if (out.path) {
      out.path.index = index;
      out.id = out.path.path_segments[index]?.id ?? out.id;
    }
    return out;
  }
}
