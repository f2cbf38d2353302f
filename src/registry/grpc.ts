/**
 * gRPC server glue: serves NS and NSE registry chains as `registry.NetworkServiceRegistry` and
 * `registry.NetworkServiceEndpointRegistry` on a grpc-js Server.
 *
 * - Each call runs with a Ctx derived from `base` (clock, log, values), aborted when the client
 *   cancels, when the call's deadline passes, or when `base` is aborted.
 * - Register/Unregister are unary. The `path` request header, when present, is parsed into
 *   REGISTRY_PATH and answered in a `path` response header after the chain succeeds; when
 *   absent (or malformed) the call goes on without path processing, as upstream NSM's registry
 *   grpcmetadata element does.
 * - Find is server-streaming: each response the chain yields is written, respecting flow
 *   control (a slow reader makes the store end its watch with UNAVAILABLE rather than buffer
 *   without bound); the stream ends when the iterable does, or with the error's status.
 * - Errors become gRPC statuses here only, through toStatus.
 */
import type * as grpc from '@grpc/grpc-js';
import { grpcJs } from '../api/grpc-js';
import { api } from '../api';
import type { NetworkServiceRegistryHandlers } from '../api/gen/registry/NetworkServiceRegistry';
import type { NetworkServiceEndpointRegistryHandlers } from '../api/gen/registry/NetworkServiceEndpointRegistry';
import { Ctx } from '../core/ctx';
import { AgentError, toStatus } from '../core/errors';
import { NsRegistry, NseRegistry } from '../core/registry';
import { PEER, peerFromCall } from '../spire/peer';
import { PATH_HEADER, REGISTRY_PATH, RegistryPath, formatPath, pathFromMetadata } from './path';

/** Service names to mark SERVING in grpc.health.v1. */
export const REGISTRY_SERVICE_NAMES = ['registry.NetworkServiceRegistry', 'registry.NetworkServiceEndpointRegistry'] as const;

export function addRegistryServices(server: grpc.Server, chains: { ns: NsRegistry; nse: NseRegistry }, base: Ctx): void {
  const { registry } = api().reg;
  const ns: NetworkServiceRegistryHandlers = {
    Register: unary(base, (ctx, req) => chains.ns.register(ctx, req)),
    Unregister: unary(base, async (ctx, req) => {
      await chains.ns.unregister(ctx, req);
      return {};
    }),
    Find: serverStream(base, (ctx, q) => chains.ns.find(ctx, q)),
  };
  const nse: NetworkServiceEndpointRegistryHandlers = {
    Register: unary(base, (ctx, req) => chains.nse.register(ctx, req)),
    Unregister: unary(base, async (ctx, req) => {
      await chains.nse.unregister(ctx, req);
      return {};
    }),
    Find: serverStream(base, (ctx, q) => chains.nse.find(ctx, q)),
  };
  server.addService(registry.NetworkServiceRegistry.service, ns);
  server.addService(registry.NetworkServiceEndpointRegistry.service, nse);
}

type AnyCall = grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>;

/** The call's Ctx and a function releasing its listeners and timers. */
function callCtx(base: Ctx, call: AnyCall): [Ctx, () => void] {
  const ac = new AbortController();
  const onCancel = () => ac.abort(new AgentError('CANCELLED', 'call cancelled by the client'));
  call.on('cancelled', onCancel);
  const peer = peerFromCall(call as Parameters<typeof peerFromCall>[0]); // mTLS callers only
  const [ctx, release] = (peer ? base.with(PEER, peer) : base).withSignal(ac.signal);
  // grpc-js gives the deadline as a Date or as absolute epoch milliseconds (Infinity if none).
  const d = call.getDeadline();
  const ms = (d instanceof Date ? d.getTime() : d) - Date.now();
  const [timed, releaseTimer] = Number.isFinite(ms) ? ctx.withTimeout(ms) : [ctx, () => {}];
  return [
    timed,
    () => {
      releaseTimer();
      release();
      call.removeListener('cancelled', onCancel);
    },
  ];
}

function unary<Req, Res>(
  base: Ctx,
  fn: (ctx: Ctx, req: Req) => Promise<Res>,
): (call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>) => void {
  return (call, cb) => {
    const [callCtxValue, done] = callCtx(base, call as AnyCall);
    let ctx = callCtxValue;
    let path: RegistryPath | undefined;
    try {
      path = pathFromMetadata(call.metadata);
      if (!path) ctx.log.warn('registry call without path header; continuing without path', { method: call.getPath() });
    } catch (err) {
      ctx.log.warn('malformed path header; continuing without path', { method: call.getPath(), err });
    }
    if (path) ctx = ctx.with(REGISTRY_PATH, path);
    fn(ctx, call.request)
      .then(
        (res) => {
          if (path) {
            const md = new grpcJs.Metadata();
            md.set(PATH_HEADER, formatPath(path));
            call.sendMetadata(md);
          }
          cb(null, res);
        },
        (err: unknown) => cb(toStatus(err)),
      )
      .finally(done);
  };
}

function serverStream<Req, Res>(
  base: Ctx,
  fn: (ctx: Ctx, req: Req) => AsyncIterable<Res>,
): (call: grpc.ServerWritableStream<Req, Res>) => void {
  return (call) => {
    const [ctx, done] = callCtx(base, call as AnyCall);
    const run = async () => {
      for await (const r of fn(ctx, call.request)) {
        if (ctx.signal.aborted) break;
        if (!call.write(r)) await drained(call, ctx.signal);
      }
      // Ended by our own abort (deadline, shutdown) rather than the client: say why.
      if (ctx.signal.aborted) throw AgentError.from(ctx.signal.reason ?? new AgentError('UNAVAILABLE', 'registry stopping'));
    };
    run()
      .then(
        () => {
          if (!call.cancelled) call.end();
        },
        (err: unknown) => {
          if (!call.cancelled) call.emit('error', toStatus(err));
        },
      )
      .finally(done);
  };
}

function drained(call: grpc.ServerWritableStream<unknown, unknown>, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const finish = () => {
      call.removeListener('drain', finish);
      signal.removeEventListener('abort', finish);
      resolve();
    };
    call.once('drain', finish);
    signal.addEventListener('abort', finish, { once: true });
  });
}
