/**
 * Turns an incoming gRPC call into a Ctx: the call's deadline and cancellation, the caller's
 * NSM token from the `nsm-client-token` / `nsm-client-token-expires` headers, the W3C trace
 * context (`traceparent`, `tracestate`), and, for mTLS callers, their SPIFFE identity (PEER).
 */
import type * as grpc from '@grpc/grpc-js';
import { Ctx } from '../../core/ctx';
import { AgentError, toStatus } from '../../core/errors';
import { INCOMING_TOKEN } from '../../core/token';
import { TRACE_CONTEXT, traceContextOf } from '../../core/trace';
import { PEER, peerFromCall } from '../../spire';

interface AnyCall {
  metadata: grpc.Metadata;
  getAuthContext?: () => ReturnType<NonNullable<Parameters<typeof peerFromCall>[0]['getAuthContext']>>;
  getDeadline(): grpc.Deadline;
  on(event: 'cancelled', fn: () => void): unknown;
  removeListener(event: 'cancelled', fn: () => void): unknown;
  cancelled?: boolean;
}

/** Reads the caller's token; headers must appear at most once each. */
export function tokenFromMetadata(md: grpc.Metadata): { token: string; expires: number } | undefined {
  const tokens = md.get('nsm-client-token');
  const expires = md.get('nsm-client-token-expires');
  if (tokens.length === 0) return undefined;
  if (tokens.length > 1 || expires.length > 1) {
    throw new AgentError('UNAUTHENTICATED', 'nsm-client-token headers must appear exactly once');
  }
  const at = Date.parse(String(expires[0] ?? ''));
  if (!Number.isFinite(at)) throw new AgentError('UNAUTHENTICATED', 'nsm-client-token-expires is not an RFC 3339 time');
  return { token: String(tokens[0]), expires: at };
}

/** A Ctx for one call; call the returned cleanup when the call is finished. */
export function callCtx(base: Ctx, call: AnyCall): [Ctx, () => void] {
  const ac = new AbortController();
  const onCancel = () => ac.abort(new AgentError('CANCELLED', 'the caller cancelled the call'));
  call.on('cancelled', onCancel);
  if (call.cancelled) onCancel();
  let [ctx, cancelSignal] = base.withSignal(ac.signal);
  const d = call.getDeadline();
  const deadline = d instanceof Date ? d.getTime() : d;
  let cancelTimeout = () => {};
  if (Number.isFinite(deadline) && deadline > 0) {
    [ctx, cancelTimeout] = ctx.withTimeout(deadline - ctx.clock.now());
  }
  const token = tokenFromMetadata(call.metadata);
  if (token) ctx = ctx.with(INCOMING_TOKEN, token);
  const [traceparent] = call.metadata.get('traceparent');
  if (traceparent !== undefined) {
    const trace = traceContextOf(traceparent, call.metadata.get('tracestate')[0]);
    if (trace) ctx = ctx.with(TRACE_CONTEXT, trace);
  }
  // mTLS callers only; the unix socket has none.
  const peer = peerFromCall(call);
  if (peer) ctx = ctx.with(PEER, peer);
  return [
    ctx,
    () => {
      cancelTimeout();
      cancelSignal();
      call.removeListener('cancelled', onCancel);
    },
  ];
}

/**
 * A unary gRPC handler running `fn` with the call's Ctx; errors become gRPC statuses here.
 */
export function unaryHandler<Req, Res>(base: () => Ctx, fn: (ctx: Ctx, req: Req) => Promise<Res>) {
  return (call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>): void => {
    let ctx: Ctx;
    let done: () => void;
    try {
      [ctx, done] = callCtx(base(), call);
    } catch (err) {
      cb(toStatus(err));
      return;
    }
    fn(ctx, call.request).then(
      (res) => {
        done();
        cb(null, res);
      },
      (err) => {
        done();
        const st = toStatus(err);
        ctx.log.debug('call failed', { method: call.getPath(), code: st.code, error: st.details });
        cb(st);
      },
    );
  };
}
