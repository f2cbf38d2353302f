/**
 * Metrics, when agent.yaml has `metrics:`: the exporter (prom-client) and its listener are
 * loaded here on demand, so an agent without metrics never loads them. Docs: docs/metrics.md.
 */
import type { Logger } from '../../core/log';
import type { X509Source } from '../../spire';
import type { MetricsListenConfig } from './server';
import type { MetricsSources, Observer } from './types';

export type { HealCause, MetricsSources, Observer } from './types';
export type { MetricsListenConfig } from './server';

export interface RunningMetrics {
  observer: Observer;
  /** Where `/metrics` is served. */
  address: string;
  close(): Promise<void>;
}

export async function startMetrics(cfg: MetricsListenConfig, sources: MetricsSources, opts: { identity: X509Source; log: Logger }): Promise<RunningMetrics> {
  const [{ Exporter }, { listenMetrics }] = await Promise.all([import('./exporter'), import('./server')]);
  const exporter = new Exporter(sources);
  const listener = await listenMetrics(cfg, exporter, opts);
  return { observer: exporter, address: listener.address, close: () => listener.close() };
}
