/**
 * Helpers for proto-loader messages (plain objects). Proto3 cannot tell an unset field from its
 * default, and the same message may arrive decoded (every field present) or hand-built (fields
 * missing), so comparisons treat undefined, null, '', 0, false, [] and {} as "unset".
 */
import type { Connection, NetworkServiceRequest, PathSegment } from '../../api';
import { fromTimestamp } from '../../api/time';

export { clone } from '../../api/clone';

function isUnset(v: unknown): boolean {
  if (v === undefined || v === null || v === '' || v === 0 || v === false) return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === 'object') return Object.values(v as object).every(isUnset);
  return false;
}

/** Deep equality with proto3 default semantics (an unset field equals its default). */
export function protoEqual(a: unknown, b: unknown): boolean {
  if (isUnset(a) && isUnset(b)) return true;
  if (isUnset(a) !== isUnset(b)) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => protoEqual(x, b[i]));
  }
  if (typeof a === 'object' && typeof b === 'object') {
    const ao = a as Record<string, unknown>;
    const bo = b as Record<string, unknown>;
    const keys = new Set([...Object.keys(ao), ...Object.keys(bo)]);
    for (const k of keys) if (!protoEqual(ao[k], bo[k])) return false;
    return true;
  }
  return String(a) === String(b);
}

/** The request's connection, never undefined. */
export function connectionOf(req: NetworkServiceRequest): Connection {
  return req.connection ?? {};
}

export function segmentsOf(conn: Connection | null | undefined): PathSegment[] {
  return conn?.path?.path_segments ?? [];
}

export function indexOf(conn: Connection | null | undefined): number {
  return conn?.path?.index ?? 0;
}

/** The segment at path.index (this hop's own segment after updatepath). */
export function currentSegment(conn: Connection | null | undefined): PathSegment | undefined {
  return segmentsOf(conn)[indexOf(conn)];
}

/** The segment before path.index (the caller's segment), if any. */
export function prevSegment(conn: Connection | null | undefined): PathSegment | undefined {
  const i = indexOf(conn);
  return i > 0 ? segmentsOf(conn)[i - 1] : undefined;
}

/** How long an end a restarted agent finds may wait for its connection before it is reaped, without an expiry. */
export const DEFAULT_RECORD_TTL_MS = 10 * 60_000;

/** The grains record expiries are rounded up to (see recordExpiry), in ms. */
const RECORD_EXPIRY_GRAINS_MS = [60_000, 30_000, 15_000, 10_000, 5_000, 2_000, 1_000];

/**
 * The grain for a connection that has `leftMs` to live: the largest of RECORD_EXPIRY_GRAINS_MS
 * not above half of it (5% leeway: a 30 s token seen a few ms after it was made still gets
 * 15 s), at least 1 s. So 30 s tokens get 15 s, 6 s tokens 2 s, 10 min tokens a minute.
 */
export function recordExpiryGrain(leftMs: number): number {
  const half = (leftMs / 2) * 1.05;
  return RECORD_EXPIRY_GRAINS_MS.find((g) => g <= half) ?? 1_000;
}

/**
 * When a record of this hop's end of `conn` may be reaped by a restarted agent: when this
 * hop's timeout would close the connection (the previous segment's expiry), rounded up to a
 * grain of about half the time the connection has left, at most a minute (recordExpiryGrain).
 *
 * Why rounded: the records are put again on every refresh, and the state store writes a record
 * only when it changed. With the exact expiry every refresh changed it (a file rewritten per
 * connection every few seconds with short tokens); rounded, successive refreshes mostly give
 * the same record (with 30 s tokens, refreshed every 6 s, 2 of 5 refreshes write). Why up:
 * reaping may come later than the connection's expiry, never earlier (a client that still
 * refreshes in time must find its end). Why half the lifetime: the cost is that an end whose
 * client went away during a restart is removed that much later; that stays within half a
 * token lifetime (and a minute), small next to the lifetime the client was granted anyway.
 */
export function recordExpiry(conn: Connection, now: number): number {
  const exact = fromTimestamp((prevSegment(conn) ?? currentSegment(conn))?.expires) ?? now + DEFAULT_RECORD_TTL_MS;
  const grain = recordExpiryGrain(exact - now);
  return Math.ceil(exact / grain) * grain;
}
