/**
 * The store elements: the last elements of the registry server chains, over a RecordStore.
 *
 * - register: rejects an empty name (INVALID_ARGUMENT), lets the rest of the chain see the
 *   entry, then upserts what came back and returns it.
 * - find without watch: the current matches (match.ts), then whatever the rest of the
 *   chain yields, then the end.
 * - find with watch: the rest of the chain first (upstream order), then the current matches
 *   and every later change of a matching entry (deleted=false on register, deleted=true on
 *   unregister or expiry) until ctx.signal aborts. A watcher that falls too far behind gets
 *   the store's UNAVAILABLE error.
 * - unregister: removes the entry (emitting deleted=true if it existed), then continues; an
 *   unknown name is not an error.
 */
import type {
  NetworkService,
  NetworkServiceEndpoint,
  NetworkServiceEndpointQuery,
  NetworkServiceEndpointResponse,
  NetworkServiceQuery,
  NetworkServiceResponse,
} from '../../api';
import { AgentError } from '../../core/errors';
import { Ctx } from '../../core/ctx';
import { NsRegistry, NseRegistry, nextNsRegistry, nextNseRegistry } from '../../core/registry';
import { matchNs, matchNse } from '../match';
import { RecordStore } from './store';

export function storeNsRegistry(store: RecordStore<NetworkService>): NsRegistry {
  return {
    async register(ctx, ns) {
      requireName(ns.name, 'network service');
      const stored = await nextNsRegistry(ctx).register(ctx, ns);
      await store.put(stored);
      return stored;
    },
    find(ctx, query: NetworkServiceQuery): AsyncIterable<NetworkServiceResponse> {
      const q = query.network_service;
      return findIn(
        ctx,
        store,
        Boolean(query.watch),
        q?.name,
        (r) => matchNs(q, r),
        (r, deleted) => ({ network_service: r, deleted }),
        () => nextNsRegistry(ctx).find(ctx, query),
      );
    },
    async unregister(ctx, ns) {
      await store.delete(ns.name ?? '');
      await nextNsRegistry(ctx).unregister(ctx, ns);
    },
  };
}

export function storeNseRegistry(store: RecordStore<NetworkServiceEndpoint>): NseRegistry {
  return {
    async register(ctx, nse) {
      requireName(nse.name, 'network service endpoint');
      const stored = await nextNseRegistry(ctx).register(ctx, nse);
      await store.put(stored);
      return stored;
    },
    find(ctx, query: NetworkServiceEndpointQuery): AsyncIterable<NetworkServiceEndpointResponse> {
      const q = query.network_service_endpoint;
      return findIn(
        ctx,
        store,
        Boolean(query.watch),
        q?.name,
        (r) => matchNse(q, r),
        (r, deleted) => ({ network_service_endpoint: r, deleted }),
        () => nextNseRegistry(ctx).find(ctx, query),
      );
    },
    async unregister(ctx, nse) {
      await store.delete(nse.name ?? '');
      await nextNseRegistry(ctx).unregister(ctx, nse);
    },
  };
}

function requireName(name: string | undefined, what: string): void {
  if (!name) throw new AgentError('INVALID_ARGUMENT', `${what} name must not be empty`);
}

async function* findIn<T extends { name?: string }, R>(
  ctx: Ctx,
  store: RecordStore<T>,
  watch: boolean,
  name: string | undefined,
  matches: (r: T) => boolean,
  response: (r: T, deleted: boolean) => R,
  rest: () => AsyncIterable<R>,
): AsyncIterable<R> {
  if (!watch) {
    // A query with a name matches that record only: look it up instead of scanning the store,
    // so that a Find by name does not grow with the number of entries.
    const found = name ? [await store.get(name)].filter((r): r is T => r !== undefined) : await store.list(matches);
    for (const r of found) if (matches(r)) yield response(r, false);
    yield* rest();
    return;
  }
  yield* rest();
  // The store tests `matches` before copying, so that a watcher of one service does not get a
  // copy of every record (watchers times records copies to start); tested again here for a
  // store that ignores the filter.
  for await (const ev of store.watch(ctx.signal, matches)) {
    if (matches(ev.record)) yield response(ev.record, ev.type === 'delete');
  }
}
