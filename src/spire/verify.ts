/**
 * Peer X.509-SVID verification, as go-spiffe's x509svid.Verify:
 * 1. the chain is not empty; the leaf carries exactly one SPIFFE ID (URI SAN) with a path;
 * 2. the leaf is not a CA and has neither keyCertSign nor cRLSign;
 * 3. the bundle of the leaf ID's OWN trust domain is looked up (none: untrusted peer);
 * 4. a path is built from the leaf through the presented intermediates to a root of that
 *    bundle only, checking signatures and validity times (EKU is not enforced);
 * 5. the ID is handed to an Authorizer.
 *
 * Step 3–4 is the <trust domain, bundle> binding: a certificate signed by td2's CA that claims
 * an ID in td1 is refused even when td2 is trusted. OpenSSL cannot do this with one merged CA
 * pool, which is why both mTLS sides (channel.ts, listen.ts) call this after the handshake.
 */
import type { X509Certificate } from 'node:crypto';
import { AgentError } from '../core/errors';
import { idMatcher, parseWorkloadId } from './id';
import { Bundles, checkIntermediates, checkLeaf } from './svid';
import { inspect, KU, notAfter, notBefore } from './x509';

export interface VerifiedPeer {
  id: string;
  trustDomain: string;
  /** The verified path: leaf, intermediates, and the root from the bundle last. */
  chain: X509Certificate[];
}

/** Returns why the peer is not allowed, or undefined to allow it. */
export type Authorizer = (peer: { id: string; trustDomain: string }) => string | undefined;

export const authorizeAny = (): Authorizer => () => undefined;
export const authorizeId = (expected: string): Authorizer => (p) => (p.id === expected ? undefined : `expected ${expected}`);
export const authorizeOneOf = (ids: readonly string[]): Authorizer => {
  const set = new Set(ids);
  return (p) => (set.has(p.id) ? undefined : `not one of ${[...set].join(', ')}`);
};
export const authorizeMemberOf = (td: string): Authorizer => (p) => (p.trustDomain === td ? undefined : `not a member of ${td}`);
/** Allows IDs matching any of the patterns of idMatcher (exact, `spiffe://td/*`, path prefix). */
export const authorizeMatching = (patterns: readonly string[]): Authorizer => {
  const matchers = patterns.map(idMatcher);
  return (p) => (matchers.some((m) => m(p.id)) ? undefined : `not matched by ${patterns.join(', ')}`);
};

const MAX_DEPTH = 8;

const unauthenticated = (msg: string) => new AgentError('UNAUTHENTICATED', msg);

/** `now` undefined: validity times are not checked (they were, at the TLS handshake). */
function validAt(c: X509Certificate, now: number | undefined): boolean {
  return now === undefined || (notBefore(c) <= now && now <= notAfter(c));
}

function signs(issuer: X509Certificate, child: X509Certificate): boolean {
  try {
    return child.checkIssued(issuer) && child.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/** A root may sign certificates when it is a CA (keyUsage, when present, includes keyCertSign). */
function canSign(root: X509Certificate): boolean {
  const info = inspect(root);
  return info.isCa && (info.keyUsage === undefined || info.keyUsage.includes(KU.keyCertSign));
}

/** Depth-first path search from `cert` to one of `roots`; returns the path after `cert`. */
function pathFrom(
  cert: X509Certificate,
  intermediates: readonly X509Certificate[],
  roots: readonly X509Certificate[],
  now: number | undefined,
  depth: number,
): X509Certificate[] | undefined {
  for (const root of roots) {
    if (signs(root, cert) && canSign(root) && validAt(root, now)) return [root];
  }
  if (depth >= MAX_DEPTH) return undefined;
  for (const ca of intermediates) {
    if (ca === cert || !signs(ca, cert) || !validAt(ca, now)) continue;
    const rest = pathFrom(ca, intermediates.filter((c) => c !== ca), roots, now, depth + 1);
    if (rest) return [ca, ...rest];
  }
  return undefined;
}

/**
 * Verifies a presented chain (leaf first) against the bundle of the leaf's trust domain, at
 * time `now` (undefined: without checking validity times, for connections whose handshake
 * already did). Throws UNAUTHENTICATED naming the reason; returns the ID and the verified path.
 */
export function verifyX509Svid(chain: readonly X509Certificate[], bundles: Bundles, now: number | undefined): VerifiedPeer {
  const leaf = chain[0];
  if (!leaf) throw unauthenticated('the peer presented no certificate');
  let id: string;
  try {
    id = checkLeaf(leaf);
    checkIntermediates(chain);
  } catch (err) {
    throw unauthenticated(`peer certificate is not a valid X.509-SVID: ${(err as Error).message}`);
  }
  const td = parseWorkloadId(id).trustDomain;
  const roots = bundles.get(td);
  if (!roots || roots.length === 0) throw unauthenticated(`peer ${id}: no bundle for trust domain ${td} (not trusted or not federated)`);
  if (!validAt(leaf, now)) throw unauthenticated(`peer ${id}: certificate is not valid now (valid ${leaf.validFrom} to ${leaf.validTo})`);
  const rest = pathFrom(leaf, chain.slice(1), roots, now, 0);
  if (!rest) throw unauthenticated(`peer ${id}: certificate does not chain to the bundle of its trust domain ${td}`);
  return { id, trustDomain: td, chain: [leaf, ...rest] };
}

/** verifyX509Svid, then the authorizer; its refusal is PERMISSION_DENIED. */
export function verifyAndAuthorize(chain: readonly X509Certificate[], bundles: Bundles, now: number | undefined, authorize: Authorizer): VerifiedPeer {
  const peer = verifyX509Svid(chain, bundles, now);
  const why = authorize(peer);
  if (why !== undefined) throw new AgentError('PERMISSION_DENIED', `peer ${peer.id} is not authorized: ${why}`);
  return peer;
}
