/** google.protobuf.Timestamp <-> milliseconds since the epoch. */
import type { Timestamp } from './index';

export function toTimestamp(ms: number): Timestamp {
  const seconds = Math.floor(ms / 1000);
  return { seconds: String(seconds), nanos: Math.round((ms - seconds * 1000) * 1e6) };
}

/** Undefined for a missing or zero timestamp (proto3 cannot tell them apart). */
export function fromTimestamp(ts: Timestamp | null | undefined): number | undefined {
  if (!ts) return undefined;
  const seconds = Number(ts.seconds ?? 0);
  const nanos = Number(ts.nanos ?? 0);
  if (seconds === 0 && nanos === 0) return undefined;
  return seconds * 1000 + nanos / 1e6;
}

/** RFC3339 with nanoseconds, as Go's time.RFC3339Nano prints UTC times (trailing zeros trimmed). */
export function rfc3339Nano(ms: number): string {
  const iso = new Date(Math.floor(ms)).toISOString(); // 2024-01-02T03:04:05.678Z
  const base = iso.slice(0, 19);
  const frac = String(Math.round((ms - Math.floor(ms / 1000) * 1000) * 1e6)).padStart(9, '0').replace(/0+$/, '');
  return frac ? `${base}.${frac}Z` : `${base}Z`;
}
