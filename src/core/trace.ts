/**
 * W3C trace context in a Ctx: the `traceparent` (and `tracestate`) of the span a call belongs
 * to. The gRPC server side reads them from the incoming metadata, the dialer writes them to the
 * outgoing metadata, so that one trace spans every agent on a connection's path (as NSM's
 * otelgrpc stats handler carries them). Only strings: nothing here loads OpenTelemetry.
 */
import { Key } from './ctx';

export interface TraceContext {
  traceparent: string;
  tracestate?: string;
}

export const TRACE_CONTEXT = new Key<TraceContext>('trace-context');

/** version-traceid-parentid-flags, lower-case hex (W3C Trace Context level 1). */
const TRACEPARENT_RE = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** The trace context of gRPC metadata values, if well-formed. */
export function traceContextOf(traceparent: unknown, tracestate?: unknown): TraceContext | undefined {
  if (typeof traceparent !== 'string' || !TRACEPARENT_RE.test(traceparent)) return undefined;
  return typeof tracestate === 'string' && tracestate ? { traceparent, tracestate } : { traceparent };
}
