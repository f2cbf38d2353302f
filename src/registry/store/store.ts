/**
 * Storage behind the registry's last chain elements (store/elements.ts). A store keeps NS and
 * NSE records by name and tells watchers about changes; it knows nothing of queries, expiry or
 * gRPC, so a memory store and an etcd store can sit under the same elements.
 *
 * Contract for every RecordStore:
 * - Records go in and come out as copies; callers may mutate what they get.
 * - `put` upserts by `name` and always emits a `put` event (a refresh is an update too).
 * - `delete` removes by name and emits a `delete` event carrying the removed record, only if
 *   there was one; it returns that record.
 * - `watch(signal, filter?)` yields the current records as `put` events first (a snapshot
 *   taken atomically with subscribing), then every change, until `signal` aborts (the iterable
 *   then ends normally). With `filter`, only the records (and changes: a delete carries the
 *   removed record) it accepts, tested before copying. A watcher that falls more than its
 *   buffer behind is not waited for: its iterable throws AgentError UNAVAILABLE after the events
 *   already delivered, and the store forgets it. Writers never block on watchers.
 */
import type { NetworkService, NetworkServiceEndpoint } from '../../api';

export interface StoreEvent<T> {
  type: 'put' | 'delete';
  record: T;
}

export interface RecordStore<T extends { name?: string }> {
  get(name: string): Promise<T | undefined>;
  put(record: T): Promise<void>;
  delete(name: string): Promise<T | undefined>;
  /** Every record, or only those `filter` accepts (tested before copying). */
  list(filter?: (record: T) => boolean): Promise<T[]>;
  /** The snapshot and then the changes; only what `filter` accepts (tested before copying; callers still check). */
  watch(signal: AbortSignal, filter?: (record: T) => boolean): AsyncIterable<StoreEvent<T>>;
}

export interface RegistryStore {
  readonly ns: RecordStore<NetworkService>;
  readonly nse: RecordStore<NetworkServiceEndpoint>;
}
