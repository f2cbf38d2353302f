/**
 * Deep copies of API messages (proto-loader plain objects), for chain elements and stores that
 * change or keep a message without touching the caller's.
 */

/**
 * A deep copy, so the copy can be changed without touching the caller's object. Messages are
 * trees of plain objects, arrays and primitives, copied here directly; anything else (a Buffer
 * for a bytes field, a Date) goes through structuredClone, which serializes to a native buffer
 * and back and is several times slower: chain elements copy on every Request and refresh, so
 * this is on the hot path of a host holding many connections. Shared sub-objects are copied once each
 * place they appear; messages have no cycles.
 */
export function clone<T>(v: T): T {
  return copy(v) as T;
}

function copy(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) {
    const out = new Array<unknown>(v.length);
    for (let i = 0; i < v.length; i++) out[i] = copy(v[i]);
    return out;
  }
  const proto = Object.getPrototypeOf(v) as unknown;
  if (proto !== Object.prototype && proto !== null) return structuredClone(v);
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) out[k] = copy((v as Record<string, unknown>)[k]);
  return out;
}
