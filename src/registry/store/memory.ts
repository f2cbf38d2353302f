/**
 * The in-memory RegistryStore (one process; gone on restart, as upstream registry-memory), and
 * the memory NS/NSE registries: the store elements over a fresh memory store, to be used as the
 * last element of a registry chain.
 *
 * Watchers get a bounded buffer each (`watchBuffer` events beyond the initial snapshot,
 * default 64; upstream's channel holds 10 but blocks writers when full). A watcher that
 * overflows is ended with AgentError UNAVAILABLE once it has read what was already queued;
 * writers never wait for it.
 */
import type { NetworkService, NetworkServiceEndpoint } from '../../api';
import { clone } from '../../api/clone';
import type { NsRegistry, NseRegistry } from '../../core/registry';
import { RecordStore, RegistryStore, StoreEvent } from './store';
import { WatchQueue } from './queue';
import { storeNsRegistry, storeNseRegistry } from './elements';

export { matchNs, matchNse } from '../match';

export const DEFAULT_WATCH_BUFFER = 64;

export interface MemoryStoreOptions {
  /** Live events a watcher may have unread before it is ended with an error. */
  watchBuffer?: number;
}

export class MemoryStore implements RegistryStore {
  readonly ns: RecordStore<NetworkService>;
  readonly nse: RecordStore<NetworkServiceEndpoint>;
  constructor(opts: MemoryStoreOptions = {}) {
    const buffer = opts.watchBuffer ?? DEFAULT_WATCH_BUFFER;
    this.ns = new MemoryRecords<NetworkService>('network service', buffer);
    this.nse = new MemoryRecords<NetworkServiceEndpoint>('network service endpoint', buffer);
  }
}

/** The NS store element over a new memory store (or the given one). */
export function memoryNsRegistry(store: RegistryStore = new MemoryStore()): NsRegistry {
  return storeNsRegistry(store.ns);
}
/** The NSE store element over a new memory store (or the given one). */
export function memoryNseRegistry(store: RegistryStore = new MemoryStore()): NseRegistry {
  return storeNseRegistry(store.nse);
}

class MemoryRecords<T extends { name?: string }> implements RecordStore<T> {
  private readonly records = new Map<string, T>();
  /** Each watcher's queue and the filter its records pass before they are copied. */
  private readonly watchers = new Map<WatchQueue<T>, ((record: T) => boolean) | undefined>();

  constructor(
    private readonly what: string,
    private readonly buffer: number,
  ) {}

  async get(name: string): Promise<T | undefined> {
    const r = this.records.get(name);
    return r && clone(r);
  }

  async put(record: T): Promise<void> {
    const r = clone(record);
    this.records.set(r.name ?? '', r);
    this.emit({ type: 'put', record: r });
  }

  async delete(name: string): Promise<T | undefined> {
    const r = this.records.get(name);
    if (!r) return undefined;
    this.records.delete(name);
    this.emit({ type: 'delete', record: r });
    return clone(r);
  }

  async list(filter?: (record: T) => boolean): Promise<T[]> {
    const out: T[] = [];
    for (const r of this.records.values()) if (!filter || filter(r)) out.push(clone(r));
    return out;
  }

  async *watch(signal: AbortSignal, filter?: (record: T) => boolean): AsyncIterable<StoreEvent<T>> {
    if (signal.aborted) return;
    // Snapshot and subscription happen in one synchronous step: no change can fall between.
    const snapshot: StoreEvent<T>[] = [];
    for (const r of this.records.values()) if (!filter || filter(r)) snapshot.push({ type: 'put', record: clone(r) });
    const w = new WatchQueue<T>(snapshot, this.buffer);
    this.watchers.set(w, filter);
    const onAbort = () => w.notify();
    signal.addEventListener('abort', onAbort);
    try {
      for (;;) {
        if (signal.aborted) return;
        const ev = w.take();
        if (ev) {
          yield ev;
          continue;
        }
        if (w.failed) throw w.failed;
        await w.waitForChange();
      }
    } finally {
      this.watchers.delete(w);
      signal.removeEventListener('abort', onAbort);
    }
  }

  private emit(ev: StoreEvent<T>): void {
    for (const [w, filter] of this.watchers) {
      if (filter && !filter(ev.record)) continue;
      if (!w.offer({ type: ev.type, record: clone(ev.record) }, this.what)) this.watchers.delete(w);
    }
  }
}
