/**
 * SPIFFE IDs (SPIFFE-ID.md, as strict as go-spiffe): `spiffe://<trust domain><path>`.
 *
 * - the scheme is the literal lowercase `spiffe://`; no userinfo, port, query or fragment;
 * - trust domain: 1–255 characters of `[a-z0-9._-]` (lowercase only, no percent-encoding);
 * - path: empty, or `/segment` repeated; segments are `[a-zA-Z0-9._-]+` and not `.` or `..`;
 *   no trailing slash; case-sensitive;
 * - the whole ID is at most 2048 bytes.
 */
import { AgentError } from '../core/errors';

export interface SpiffeId {
  /** The ID as a string, e.g. `spiffe://example.org/ns/db/client`. */
  id: string;
  trustDomain: string;
  /** `''` for a trust domain ID, else starts with `/`. */
  path: string;
}

const PREFIX = 'spiffe://';
const TD = /^[a-z0-9._-]{1,255}$/;
const SEGMENT = /^[a-zA-Z0-9._-]+$/;

/** Why `s` is not a SPIFFE ID, or undefined if it is one. */
function problem(s: string): string | undefined {
  if (typeof s !== 'string' || s === '') return 'is empty';
  if (Buffer.byteLength(s) > 2048) return 'is longer than 2048 bytes';
  if (!s.startsWith(PREFIX)) return 'does not start with spiffe://';
  const rest = s.slice(PREFIX.length);
  const slash = rest.indexOf('/');
  const td = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash);
  if (!TD.test(td)) return `has an invalid trust domain "${td}" (lowercase letters, digits, ".", "-" and "_" only)`;
  if (path === '') return undefined;
  const segments = path.slice(1).split('/');
  for (const seg of segments) {
    if (seg === '') return 'has an empty path segment or a trailing slash';
    if (seg === '.' || seg === '..') return 'has a "." or ".." path segment';
    if (!SEGMENT.test(seg)) return `has an invalid path segment "${seg}"`;
  }
  return undefined;
}

/** Parses a SPIFFE ID; throws INVALID_ARGUMENT naming the problem. */
export function parseSpiffeId(s: string): SpiffeId {
  const why = problem(s);
  if (why) throw new AgentError('INVALID_ARGUMENT', `${JSON.stringify(String(s).slice(0, 200))} is not a SPIFFE ID: it ${why}`);
  const rest = s.slice(PREFIX.length);
  const slash = rest.indexOf('/');
  return { id: s, trustDomain: slash < 0 ? rest : rest.slice(0, slash), path: slash < 0 ? '' : rest.slice(slash) };
}

export function isSpiffeId(s: unknown): s is string {
  return typeof s === 'string' && problem(s) === undefined;
}

/** A workload ID: a SPIFFE ID with a non-empty path (what X.509-SVID leaves must carry). */
export function parseWorkloadId(s: string): SpiffeId {
  const id = parseSpiffeId(s);
  if (id.path === '') throw new AgentError('INVALID_ARGUMENT', `${s} is a trust domain ID, not a workload ID (it has no path)`);
  return id;
}

/**
 * A trust domain name from a bundle-map key or a config value: `td` or `spiffe://td` (the
 * Workload API sends the latter, operators often write the former).
 */
export function trustDomainName(key: string): string {
  const td = key.startsWith(PREFIX) ? parseSpiffeId(key) : parseSpiffeId(PREFIX + key);
  if (td.path !== '') throw new AgentError('INVALID_ARGUMENT', `${key} is not a trust domain (it has a path)`);
  return td.trustDomain;
}

/**
 * A predicate for an ID pattern, as used in the agent's policy:
 * - `spiffe://td/a/b`: exactly that ID;
 * - `spiffe://td/*`: any ID in trust domain td;
 * - `spiffe://td/a/*`: any ID in td whose path is below `/a` (`/a/x`, `/a/x/y`; not `/a`);
 * - `*`: any ID at all.
 * Throws INVALID_ARGUMENT for anything else, so a typo in agent.yaml is reported, not ignored.
 */
export function idMatcher(pattern: string): (id: string) => boolean {
  if (pattern === '*') return () => true;
  if (pattern.endsWith('/*')) {
    const base = parseSpiffeId(pattern.slice(0, -2));
    const prefix = `${base.id}/`;
    return (id) => id.startsWith(prefix) && isSpiffeId(id);
  }
  const exact = parseSpiffeId(pattern).id;
  return (id) => id === exact;
}
