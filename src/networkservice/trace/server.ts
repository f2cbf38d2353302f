/**
 * trace: spans around a chain (one per Request and Close at a hop) and around single elements
 * that do work (IPAM, dataplane, registry), children of the trace context in the Ctx, which
 * they replace with their own for what they call. The Tracer is an interface so that nothing
 * here loads OpenTelemetry; the agent gives one only when tracing is on.
 *
 * Placement of traceServer: first in a server chain, so that the span covers the hop.
 */
import { nextServer, type NetworkServiceClient, type NetworkServiceServer } from '../../core/networkservice';
import type { Connection } from '../../api';
import type { Ctx } from '../../core/ctx';
import { TRACE_CONTEXT, type TraceContext } from '../../core/trace';

export interface Span {
  /** This span as a parent, for the Ctx of what it calls. */
  readonly context: TraceContext;
  /** Ends the span, failed if `err` is given. */
  end(err?: unknown): void;
}

export interface Tracer {
  start(name: string, parent: TraceContext | undefined, attributes: Record<string, string>): Span;
}

function attributesOf(conn: Connection | null | undefined): Record<string, string> {
  return { 'nsm.connection_id': conn?.id ?? '', 'nsm.network_service': conn?.network_service ?? '' };
}

async function inSpan<T>(tracer: Tracer, name: string, ctx: Ctx, conn: Connection | null | undefined, fn: (ctx: Ctx) => Promise<T>): Promise<T> {
  const span = tracer.start(name, ctx.get(TRACE_CONTEXT), attributesOf(conn));
  try {
    const out = await fn(ctx.with(TRACE_CONTEXT, span.context));
    span.end();
    return out;
  } catch (err) {
    span.end(err);
    throw err;
  }
}

/** A span per Request and Close through the rest of the chain, named `<hop>/Request`, `<hop>/Close`. */
export function traceServer(tracer: Tracer, hop: string): NetworkServiceServer {
  return {
    request: (ctx, req) => inSpan(tracer, `${hop}/Request`, ctx, req.connection, (c) => nextServer(c).request(c, req)),
    close: (ctx, conn) => inSpan(tracer, `${hop}/Close`, ctx, conn, (c) => nextServer(c).close(c, conn)),
  };
}

/** `element` with a span around each of its calls (which include the rest of the chain after it). */
export function tracedServer(tracer: Tracer, name: string, element: NetworkServiceServer): NetworkServiceServer {
  return {
    request: (ctx, req) => inSpan(tracer, `${name}/Request`, ctx, req.connection, (c) => element.request(c, req)),
    close: (ctx, conn) => inSpan(tracer, `${name}/Close`, ctx, conn, (c) => element.close(c, conn)),
  };
}

export function tracedClient(tracer: Tracer, name: string, element: NetworkServiceClient): NetworkServiceClient {
  return {
    request: (ctx, req) => inSpan(tracer, `${name}/Request`, ctx, req.connection, (c) => element.request(c, req)),
    close: (ctx, conn) => inSpan(tracer, `${name}/Close`, ctx, conn, (c) => element.close(c, conn)),
  };
}

