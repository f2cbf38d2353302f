/**
 * The registry `path` gRPC metadata header (upstream NSM sdk registry/common/grpcmetadata), sent
 * on Register and Unregister:
 * JSON `{"Index":<uint32>,"PathSegments":[{"token":"<jwt>"}, ...]}` with Go's capitalised keys.
 *
 * In the chain it travels as a mutable RegistryPath under REGISTRY_PATH: the server glue puts
 * the received one there (none if the header is absent: continue without path processing) and
 * answers the path as it is after the chain in a `path` response header; the gRPC client
 * element sends the ctx's path (or an empty one) and copies the answered one back into it.
 */
import { Metadata } from '@grpc/grpc-js';
import { Key } from '../core/ctx';

export const PATH_HEADER = 'path';

export interface RegistryPath {
  Index: number;
  PathSegments: { token: string }[] | null;
}

export const REGISTRY_PATH = new Key<RegistryPath>('registry.path');

/** What upstream sends on a first call: `{"Index":0,"PathSegments":null}`. */
export const emptyPath = (): RegistryPath => ({ Index: 0, PathSegments: null });

export function formatPath(p: RegistryPath): string {
  return JSON.stringify({ Index: p.Index, PathSegments: p.PathSegments });
}

/**
 * The path from metadata: undefined when the header is absent; throws on malformed JSON. Like
 * upstream, the last value wins and an empty value is an empty path.
 */
export function pathFromMetadata(md: Metadata): RegistryPath | undefined {
  const values = md.get(PATH_HEADER);
  if (values.length === 0) return undefined;
  const raw = String(values[values.length - 1] ?? '');
  if (raw === '') return emptyPath();
  const v = JSON.parse(raw) as { Index?: unknown; PathSegments?: unknown };
  if (typeof v !== 'object' || v === null) throw new Error('path header is not a JSON object');
  const segs = Array.isArray(v.PathSegments)
    ? v.PathSegments.map((s: unknown) => ({ token: String((s as { token?: unknown } | null)?.token ?? '') }))
    : null;
  return { Index: Number(v.Index ?? 0) >>> 0, PathSegments: segs };
}

/** Copies `from` into `into`, keeping `into`'s identity (others may hold it). */
export function assignPath(into: RegistryPath, from: RegistryPath): void {
  into.Index = from.Index;
  into.PathSegments = from.PathSegments;
}
