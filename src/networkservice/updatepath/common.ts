/**
 * The path algorithm shared by the updatepath server and client (NSM common/updatepath).
 *
 * 0. No segments: add one for this hop at index 0, with id = conn.id (a UUIDv4 if empty).
 * 1. The segment at path.index has this hop's name: a refresh from the same hop; reuse its id.
 * 2. Otherwise the segment at path.index is the caller's, and its id must equal conn.id.
 *    The hop moves to index+1:
 *    - a segment there with another name is renamed to this hop with a fresh UUID (the caller
 *      chose a different next hop, e.g. after reselect);
 *    - a segment there with this hop's name keeps its id (refresh);
 *    - no segment there: one is appended with a fresh UUID.
 * conn.id becomes this hop's segment id. The returned `callerIndex` is the index the caller
 * sent, so the way back can restore the caller's view (id and index).
 */
import { randomUUID } from 'node:crypto';
import type { Connection } from '../../api';
import { AgentError } from '../../core/errors';
import { validateId } from '../../core/validate';
import { clone } from '../utils';

export interface UpdatePathOptions {
  /**
   * Reject a connection that starts a path (no segments) with an empty id, instead of
   * generating one: INVALID_ARGUMENT "connection id must not be empty". For the agent's local
   * API, where the caller's id is how it finds its connection again.
   */
  requireConnectionId?: boolean;
}

export interface UpdatedPath {
  /** A copy of the input connection with this hop's segment, id and index. */
  conn: Connection;
  /** The caller's path.index, to restore on the way back. */
  callerIndex: number;
}

export function updatePath(input: Connection, name: string, opts: UpdatePathOptions = {}): UpdatedPath {
  const conn = clone(input);
  const path = (conn.path = conn.path ?? {});
  const segments = (path.path_segments = path.path_segments ?? []);

  if (segments.length === 0) {
    if (!conn.id) {
      if (opts.requireConnectionId) throw new AgentError('INVALID_ARGUMENT', 'connection id must not be empty');
      conn.id = randomUUID();
    } else if (opts.requireConnectionId) {
      validateId(conn.id);
    }
    path.index = 0;
    segments.push({ name, id: conn.id });
    return { conn, callerIndex: 0 };
  }

  const index = path.index ?? 0;
  const current = segments[index];
  if (current && current.name === name) {
    conn.id = current.id ?? '';
    return { conn, callerIndex: index };
  }

  const nextIndex = index + 1;
  if (nextIndex > segments.length || !current) {
    throw new AgentError(
      'INVALID_ARGUMENT',
      `Path.Index+1==${nextIndex} should be less or equal len(Path.PathSegments)==${segments.length}`,
    );
  }
  if ((current.id ?? '') !== (conn.id ?? '')) {
    throw new AgentError(
      'INVALID_ARGUMENT',
      `Current PathSegment.Id==${current.id ?? ''} should be equal Connection.Id==${conn.id ?? ''}`,
    );
  }

  const next = segments[nextIndex];
  if (next && next.name !== name) {
    // A different next hop than last time: this segment now describes us.
    segments[nextIndex] = { name, id: randomUUID() };
  }
  path.index = nextIndex;
  const own = segments[nextIndex];
  if (own) {
    conn.id = own.id ?? '';
  } else {
    conn.id = randomUUID();
    segments.push({ name, id: conn.id });
  }
  return { conn, callerIndex: index };
}

/** The connection as the caller sees it: its own id and index. */
export function restoreCaller(conn: Connection, callerIndex: number, fallbackId: string | undefined): Connection {
  const seg = conn.path?.path_segments?.[callerIndex];
  return {
    ...conn,
    id: seg?.id || fallbackId || conn.id,
    path: { ...(conn.path ?? {}), index: callerIndex },
  };
}
