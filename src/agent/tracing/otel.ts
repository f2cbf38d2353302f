/**
 * The OpenTelemetry SDK behind the chains' Tracer: spans batched to an OTLP/gRPC collector,
 * parents and children carried as W3C trace context. Loaded only when tracing is on.
 */
import * as grpc from '@grpc/grpc-js';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, defaultTextMapGetter, defaultTextMapSetter } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { TraceContext } from '../../core/trace';
import type { Span, Tracer } from '../../networkservice/trace';
import type { RunningTracing } from '.';

/** Spans are sent at most this long after they end. */
const EXPORT_DELAY_MS = 500;

export function openTelemetryTracer(endpoint: string, serviceName: string): RunningTracing {
  const exporter = new OTLPTraceExporter({ url: `http://${endpoint}`, credentials: grpc.credentials.createInsecure() });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': serviceName }),
    spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: EXPORT_DELAY_MS })],
  });
  const otel = provider.getTracer('nsm-agent');
  const propagator = new W3CTraceContextPropagator();

  const tracer: Tracer = {
    start(name, parent, attributes): Span {
      const parentCtx = parent ? propagator.extract(ROOT_CONTEXT, { ...parent }, defaultTextMapGetter) : ROOT_CONTEXT;
      const span = otel.startSpan(name, { kind: SpanKind.SERVER, attributes }, parentCtx);
      const carrier: Record<string, string> = {};
      propagator.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, defaultTextMapSetter);
      const context: TraceContext = carrier['tracestate'] ? { traceparent: carrier['traceparent'] ?? '', tracestate: carrier['tracestate'] } : { traceparent: carrier['traceparent'] ?? '' };
      return {
        context,
        end(err?: unknown) {
          if (err !== undefined) {
            span.recordException(err instanceof Error ? err : String(err));
            span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
          }
          span.end();
        },
      };
    },
  };
  return { tracer, close: () => provider.shutdown() };
}
