/**
 * querycache (NSM registry/common/querycache): answers repeated non-watch finds of a remote
 * registry from memory, kept current by a watch on the same query, so that a connect does not
 * wait for a registry round trip to another host for the service it asked for a moment ago.
 *
 * - The first non-watch find of a query opens a watch find of that query, then asks the
 *   registry as before; the answer is the registry's and seeds the entry. Changes the watch
 *   delivers meanwhile are applied after the seed, in order (an entry the watch reports deleted
 *   goes; any other is put as reported), so the entry follows the registry from then on.
 * - Later finds of the same query are answered from the entry (copies) while its watch lives.
 *   Concurrent first finds share one registry call.
 * - A watch that ends or fails (the registry restarted, the network broke) drops its entry:
 *   the next find asks the registry again; so does a seed that fails. The seed's registry call
 *   has its first caller's deadline but not its cancellation: a caller that gives up does not
 *   cut it short for the finds that share it. An entry nobody asked for in `idleMs` (default
 *   60 s) is dropped and its watch cancelled; at most `maxEntries` queries are kept (others
 *   pass through).
 * - Watch finds, register and unregister pass through untouched.
 * The window it cannot close: a change between the registry answering the seed and it
 * registering the watch is seen only once the entry is dropped, or, for an endpoint that was
 * removed, at its expiration time (discover drops expired endpoints).
 */
import type {
  NetworkService,
  NetworkServiceEndpoint,
  NetworkServiceEndpointQuery,
  NetworkServiceEndpointResponse,
  NetworkServiceQuery,
  NetworkServiceResponse,
} from '../api';
import { realClock, type Clock } from '../core/clock';
import { Ctx } from '../core/ctx';
import { AgentError } from '../core/errors';
import type { Logger } from '../core/log';
import { silentLogger } from '../core/log';
import type { NseRegistry, NsRegistry } from '../core/registry';
import { clone } from '../api/clone';

export interface QueryCacheOptions {
  clock?: Clock;
  log?: Logger;
  /** An entry not asked for this long is dropped (ms, default 60 s). */
  idleMs?: number;
  /** Queries kept at most (default 1000); finds of others pass through. */
  maxEntries?: number;
}

export const QUERY_CACHE_IDLE_MS = 60_000;
export const QUERY_CACHE_MAX_ENTRIES = 1000;

interface Entry<R, T> {
  /** The items by name, once seeded. */
  items?: Map<string, T>;
  /** The seed's registry call; concurrent first finds wait for it. */
  seeded: Promise<void>;
  /** Watch changes that arrived before the seed. */
  early: R[];
  lastUsed: number;
  stop: AbortController;
}

/** The generic cache over one registry API; `item`/`wrap` map between responses and items. */
class QueryCache<Q extends { watch?: boolean }, R extends { deleted?: boolean }, T extends { name?: string }> {
  private readonly entries = new Map<string, Entry<R, T>>();
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly idleMs: number;
  private readonly maxEntries: number;
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly what: string,
    private readonly keyOf: (q: Q) => string,
    private readonly itemOf: (r: R) => T | undefined,
    private readonly wrap: (item: T) => R,
    opts: QueryCacheOptions,
  ) {
    this.clock = opts.clock ?? realClock;
    this.log = opts.log ?? silentLogger;
    this.idleMs = opts.idleMs ?? QUERY_CACHE_IDLE_MS;
    this.maxEntries = opts.maxEntries ?? QUERY_CACHE_MAX_ENTRIES;
    this.sweeper = setInterval(() => this.sweep(), Math.max(1000, this.idleMs / 2));
    this.sweeper.unref();
  }

  async *find(ctx: Ctx, query: Q, next: (ctx: Ctx, q: Q) => AsyncIterable<R>): AsyncIterable<R> {
    if (query.watch) {
      yield* next(ctx, query);
      return;
    }
    const key = this.keyOf(query);
    let entry = this.entries.get(key);
    if (!entry) {
      if (this.entries.size >= this.maxEntries) {
        yield* next(ctx, query);
        return;
      }
      entry = this.open(ctx, key, query, next);
    }
    entry.lastUsed = this.clock.now();
    await entry.seeded; // a failed seed throws here, and its entry is gone
    for (const item of entry.items!.values()) yield this.wrap(clone(item));
  }

  /** Drops every entry and cancels the watches. */
  close(): void {
    clearInterval(this.sweeper);
    for (const key of [...this.entries.keys()]) this.drop(key);
  }

  get size(): number {
    return this.entries.size;
  }

  private open(ctx: Ctx, key: string, query: Q, next: (ctx: Ctx, q: Q) => AsyncIterable<R>): Entry<R, T> {
    const stop = new AbortController();
    const entry: Entry<R, T> = { seeded: Promise.resolve(), early: [], lastUsed: this.clock.now(), stop };
    this.entries.set(key, entry);
    // The watch lives with the entry, not with the call that opened it.
    const watchCtx = Ctx.background({ clock: this.clock, log: this.log, signal: stop.signal });
    void this.follow(key, entry, next(watchCtx, { ...query, watch: true }));
    // The registry call is shared by every find of the query that comes while it runs: it has
    // the first caller's values and deadline but not its cancellation, so that a caller giving
    // up does not cut the call short for the others.
    const [seedCtx, releaseSeed] = ctx.detached(ctx.remaining());
    entry.seeded = (async () => {
      try {
        const items = new Map<string, T>();
        for await (const r of next(seedCtx, query)) this.apply(items, r);
        // A call past its deadline ends early without an error (the remote registry client
        // ends a cancelled stream as a watch would end): what it gave is not the answer.
        if (seedCtx.signal.aborted) throw new AgentError('DEADLINE_EXCEEDED', `${this.what} find: no answer from the registry in time`);
        for (const r of entry.early.splice(0)) this.apply(items, r);
        entry.items = items;
      } finally {
        releaseSeed();
      }
    })();
    entry.seeded.catch(() => {
      if (this.entries.get(key) === entry) this.drop(key);
    });
    return entry;
  }

  private async follow(key: string, entry: Entry<R, T>, changes: AsyncIterable<R>): Promise<void> {
    try {
      for await (const r of changes) {
        if (entry.items) this.apply(entry.items, r);
        else entry.early.push(r);
      }
      if (!entry.stop.signal.aborted) this.log.debug(`${this.what} watch ended; the next find asks the registry`, { query: key });
    } catch (err) {
      if (!entry.stop.signal.aborted) this.log.debug(`${this.what} watch failed; the next find asks the registry`, { query: key, error: err });
    }
    if (this.entries.get(key) === entry) this.drop(key);
  }

  private apply(items: Map<string, T>, r: R): void {
    const item = this.itemOf(r);
    if (!item) return;
    if (r.deleted) items.delete(item.name ?? '');
    else items.set(item.name ?? '', item);
  }

  private drop(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    entry.stop.abort();
  }

  private sweep(): void {
    const now = this.clock.now();
    for (const [key, e] of [...this.entries]) if (now - e.lastUsed >= this.idleMs) this.drop(key);
  }
}

/** One registry API, as NsRegistry and NseRegistry both are. */
interface Registry<T, Q, R> {
  register(ctx: Ctx, item: T): Promise<T>;
  find(ctx: Ctx, query: Q): AsyncIterable<R>;
  unregister(ctx: Ctx, item: T): Promise<void>;
}

type Cached<Reg> = Reg & { close(): void; readonly size: number };

function cachedRegistry<Q extends { watch?: boolean }, R extends { deleted?: boolean }, T extends { name?: string }>(
  inner: Registry<T, Q, R>,
  cache: QueryCache<Q, R, T>,
): Cached<Registry<T, Q, R>> {
  return {
    register: (ctx, item) => inner.register(ctx, item),
    unregister: (ctx, item) => inner.unregister(ctx, item),
    find: (ctx, query) => cache.find(ctx, query, (c, q) => inner.find(c, q)),
    close: () => cache.close(),
    get size() {
      return cache.size;
    },
  };
}

/** `inner` (a remote NSE registry) with its non-watch finds answered by a query cache. */
export function nseQueryCache(inner: NseRegistry, opts: QueryCacheOptions = {}): Cached<NseRegistry> {
  const cache = new QueryCache<NetworkServiceEndpointQuery, NetworkServiceEndpointResponse, NetworkServiceEndpoint>(
    'NSE query cache',
    (q) => JSON.stringify(q.network_service_endpoint ?? {}),
    (r) => r.network_service_endpoint ?? undefined,
    (nse) => ({ network_service_endpoint: nse }),
    opts,
  );
  return cachedRegistry(inner, cache);
}

/** `inner` (a remote NS registry) with its non-watch finds answered by a query cache. */
export function nsQueryCache(inner: NsRegistry, opts: QueryCacheOptions = {}): Cached<NsRegistry> {
  const cache = new QueryCache<NetworkServiceQuery, NetworkServiceResponse, NetworkService>(
    'NS query cache',
    (q) => JSON.stringify(q.network_service ?? {}),
    (r) => r.network_service ?? undefined,
    (ns) => ({ network_service: ns }),
    opts,
  );
  return cachedRegistry(inner, cache);
}
