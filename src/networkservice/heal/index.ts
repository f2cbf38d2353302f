export {
  healClient,
  healClient as newClient,
  DEFAULT_LIVENESS_INTERVAL_MS,
  DEFAULT_RETRY_INITIAL_MS,
  DEFAULT_RETRY_MAX_MS,
  type HealOptions,
  type HealClient,
  type HealTrigger,
  type HealReport,
  type HealObserver,
} from './client';
export * from './liveness';
