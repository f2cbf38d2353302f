/**
 * MonitorScopeSelector matching (api MatchesMonitorScopeSelector):
 * - an empty selector matches every connection;
 * - `network_services`, if not empty, must contain conn.network_service;
 * - `path_segments` must appear as a contiguous run of conn.path.path_segments, where each
 *   selector segment's non-empty name, id and token must be equal (empty fields are wildcards).
 */
import type { Connection, MonitorScopeSelector, PathSegment } from '../../api';

function segmentMatches(want: PathSegment, have: PathSegment | undefined): boolean {
  if (!have) return false;
  if (want.name && want.name !== have.name) return false;
  if (want.id && want.id !== have.id) return false;
  if (want.token && want.token !== have.token) return false;
  return true;
}

export function matchesSelector(conn: Connection, selector: MonitorScopeSelector | null | undefined): boolean {
  const wantSegs = selector?.path_segments ?? [];
  const services = selector?.network_services ?? [];
  if (services.length > 0 && !services.includes(conn.network_service ?? '')) return false;
  if (wantSegs.length === 0) return true;
  const haveSegs = conn.path?.path_segments ?? [];
  for (let i = 0; i + wantSegs.length <= haveSegs.length; i++) {
    if (wantSegs.every((w, j) => segmentMatches(w, haveSegs[i + j]))) return true;
  }
  return false;
}
