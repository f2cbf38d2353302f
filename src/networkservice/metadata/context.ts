/**
 * Per-connection state for chain elements (NSM utils/metadata). The metadata element puts one
 * ConnectionMetadata per Connection.id in the Ctx; elements read it with `metadata(ctx, side)`.
 * It lives from the first successful Request to Close, and is dropped when a first Request
 * fails. Server and client elements of one chain get separate maps, so an element with both
 * variants (refresh, trimpath, ...) never sees its twin's entries.
 *
 * A client chain nested in a server chain (connect) inherits the server's ConnectionMetadata:
 * the client metadata element only adds one when the Ctx has none. A server metadata element
 * inherits only from another server one: below a client chain it is the next hop (a server
 * chain called in-process) and keeps its own.
 */
import { Ctx, Key } from '../../core/ctx';
import { AgentError } from '../../core/errors';

/** A map with typed keys (compare by identity). */
export class MetaMap {
  private readonly m = new Map<Key<unknown>, unknown>();
  get<T>(key: Key<T>): T | undefined {
    return this.m.get(key as Key<unknown>) as T | undefined;
  }
  set<T>(key: Key<T>, value: T): void {
    this.m.set(key as Key<unknown>, value);
  }
  has(key: Key<unknown>): boolean {
    return this.m.has(key);
  }
  delete(key: Key<unknown>): boolean {
    return this.m.delete(key);
  }
  /** Get and delete (Go's LoadAndDelete). */
  take<T>(key: Key<T>): T | undefined {
    const v = this.get(key);
    this.m.delete(key as Key<unknown>);
    return v;
  }
  /** Get, or set to make() first (Go's LoadOrStore). */
  getOrSet<T>(key: Key<T>, make: () => T): T {
    if (this.m.has(key as Key<unknown>)) return this.m.get(key as Key<unknown>) as T;
    const v = make();
    this.m.set(key as Key<unknown>, v);
    return v;
  }
  get size(): number {
    return this.m.size;
  }
}

export type Side = 'server' | 'client';

export class ConnectionMetadata {
  readonly server = new MetaMap();
  readonly client = new MetaMap();
  /** The kind of metadata element that made this one. */
  constructor(readonly origin: Side = 'server') {}
}

const KEY = new Key<ConnectionMetadata>('metadata');

export function withMetadata(ctx: Ctx, md: ConnectionMetadata | undefined): Ctx {
  return ctx.with(KEY, md);
}

export function hasMetadata(ctx: Ctx): boolean {
  return ctx.get(KEY) !== undefined;
}

/** The side of the metadata element that put the metadata in ctx, if any. */
export function metadataOrigin(ctx: Ctx): Side | undefined {
  return ctx.get(KEY)?.origin;
}

/** The per-connection map for this side; throws if no metadata element precedes the caller. */
export function metadata(ctx: Ctx, side: Side): MetaMap {
  const md = ctx.get(KEY);
  if (!md) throw new AgentError('INTERNAL', 'no connection metadata in context: add the metadata element to the chain');
  return side === 'client' ? md.client : md.server;
}
