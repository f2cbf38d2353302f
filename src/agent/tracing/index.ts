/**
 * Traces, as NSM's components switch them: `TELEMETRY=true` with the OTLP/gRPC collector at
 * `NSM_OPEN_TELEMETRY_ENDPOINT` (default NSM's otel-collector.observability.svc.cluster.local:4317),
 * or `telemetry:` in agent.yaml. The OpenTelemetry SDK is loaded here on demand only
 * (./otel.ts), so an agent without tracing never loads it.
 */
import type { Logger } from '../../core/log';
import type { Tracer } from '../../networkservice/trace';

/** NSM's default collector address (sdk tools/opentelemetry). */
export const DEFAULT_OTLP_ENDPOINT = 'otel-collector.observability.svc.cluster.local:4317';

export interface TracingSettings {
  /** The collector's OTLP/gRPC address, host:port (plain, as NSM's exporter dials it). */
  endpoint: string;
}

/** Tracing on or off: the environment (NSM's switches) over agent.yaml's `telemetry`. */
export function tracingSettings(cfg: { endpoint: string } | undefined, env: NodeJS.ProcessEnv = process.env): TracingSettings | undefined {
  const switched = env['TELEMETRY'];
  if (switched !== undefined && switched !== '' && switched.toLowerCase() !== 'true') return undefined;
  if (switched?.toLowerCase() !== 'true' && !cfg) return undefined;
  return { endpoint: env['NSM_OPEN_TELEMETRY_ENDPOINT'] || cfg?.endpoint || DEFAULT_OTLP_ENDPOINT };
}

export interface RunningTracing {
  tracer: Tracer;
  /** Sends what is pending and stops. */
  close(): Promise<void>;
}

export async function startTracing(settings: TracingSettings, serviceName: string, log: Logger): Promise<RunningTracing> {
  const { openTelemetryTracer } = await import('./otel');
  const t = openTelemetryTracer(settings.endpoint, serviceName);
  log.info('tracing on', { endpoint: settings.endpoint });
  return t;
}
