/**
 * The two registry APIs as chain elements. `find` yields responses: without `watch` it ends
 * after the current matches; with `watch` it goes on yielding changes until ctx is aborted.
 * Register returns the entry as stored (expiration and registration time set); unregister
 * must not throw for an entry it does not know.
 */
import type {
  NetworkService,
  NetworkServiceEndpoint,
  NetworkServiceEndpointQuery,
  NetworkServiceEndpointResponse,
  NetworkServiceQuery,
  NetworkServiceResponse,
} from '../api';
import { ChainKind, chainOf, nextOf } from './chain';
import { Ctx, Key } from './ctx';

export interface NsRegistry {
  register(ctx: Ctx, ns: NetworkService): Promise<NetworkService>;
  find(ctx: Ctx, query: NetworkServiceQuery): AsyncIterable<NetworkServiceResponse>;
  unregister(ctx: Ctx, ns: NetworkService): Promise<void>;
}

export interface NseRegistry {
  register(ctx: Ctx, nse: NetworkServiceEndpoint): Promise<NetworkServiceEndpoint>;
  find(ctx: Ctx, query: NetworkServiceEndpointQuery): AsyncIterable<NetworkServiceEndpointResponse>;
  unregister(ctx: Ctx, nse: NetworkServiceEndpoint): Promise<void>;
}

async function* nothing<T>(): AsyncIterable<T> {}

export const tailNsRegistry: NsRegistry = {
  register: async (_ctx, ns) => ns,
  find: () => nothing(),
  unregister: async () => {},
};
export const tailNseRegistry: NseRegistry = {
  register: async (_ctx, nse) => nse,
  find: () => nothing(),
  unregister: async () => {},
};

const METHODS = ['register', 'find', 'unregister'] as const;
export const NS_REGISTRY: ChainKind<NsRegistry> = { key: new Key('next.ns-registry'), tail: tailNsRegistry, methods: METHODS };
export const NSE_REGISTRY: ChainKind<NseRegistry> = { key: new Key('next.nse-registry'), tail: tailNseRegistry, methods: METHODS };

export const nextNsRegistry = (ctx: Ctx): NsRegistry => nextOf(NS_REGISTRY, ctx);
export const nextNseRegistry = (ctx: Ctx): NseRegistry => nextOf(NSE_REGISTRY, ctx);
export const chainNsRegistry = (...elements: NsRegistry[]): NsRegistry => chainOf(NS_REGISTRY, elements);
export const chainNseRegistry = (...elements: NseRegistry[]): NseRegistry => chainOf(NSE_REGISTRY, elements);

/** Collects a non-watch find into a list, skipping `deleted` responses as NSM clients do. */
export async function findAll<T>(it: AsyncIterable<{ deleted?: boolean } & T>): Promise<T[]> {
  const out: T[] = [];
  for await (const r of it) if (!r.deleted) out.push(r);
  return out;
}
