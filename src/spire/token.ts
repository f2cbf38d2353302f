/**
 * NSM tokens (as NSM's sdk/pkg/tools/spiffejwt): JWTs signed ES256 with the X.509-SVID
 * private key, so that a token verifies with the public key of the certificate its sender
 * presents in mTLS.
 *
 * Wire format, for interoperation with NSM's Go components (golang-jwt RegisteredClaims):
 * header `{"alg":"ES256","typ":"JWT"}` (plus `kid` only if asked for); claims `sub` = own
 * SPIFFE ID, `aud` = `[peer SPIFFE ID]` (a JSON array; omitted when the peer is unknown),
 * `exp` = whole seconds; the signature is r‖s (64 bytes, JWS ES256). Sent as gRPC metadata
 * `nsm-client-token` and `nsm-client-token-expires` (RFC 3339 with nanoseconds).
 *
 * Expiry = min(now + maxTokenLifetime, own SVID NotAfter, peer certificate NotAfter).
 */
import { KeyObject, sign, verify } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import { grpcJs } from '../api/grpc-js';
import { rfc3339Nano } from '../api/time';
import { Clock, realClock } from '../core/clock';
import { AgentError } from '../core/errors';
import { RecentMap } from '../core/recent';
import type { Token, TokenSource } from '../core/token';
import { isSpiffeId } from './id';
import type { PeerIdentity } from './peer';
import type { X509Source } from './source';
import type { X509Svid } from './svid';

export const TOKEN_HEADER = 'nsm-client-token';
export const TOKEN_EXPIRES_HEADER = 'nsm-client-token-expires';

export interface JwtHeader {
  alg: string;
  typ?: string;
  kid?: string;
  [k: string]: unknown;
}

export interface JwtClaims {
  sub?: string;
  aud?: string | string[];
  /** Seconds since the epoch. */
  exp?: number;
  [k: string]: unknown;
}

export interface DecodedJwt {
  header: JwtHeader;
  claims: JwtClaims;
  /** `base64url(header).base64url(claims)`: what the signature covers. */
  signingInput: string;
  signature: Buffer;
}

const bad = (msg: string) => new AgentError('UNAUTHENTICATED', msg);
const B64URL = /^[A-Za-z0-9_-]*$/;

/** Decodes a JWS compact JWT without verifying it; throws UNAUTHENTICATED if it is not one. */
export function decodeJwt(token: string): DecodedJwt {
  if (typeof token !== 'string' || token === '') throw bad('token is empty');
  const parts = token.split('.');
  if (parts.length !== 3) throw bad('token is not a JWT (expected three dot-separated parts)');
  const [h, c, s] = parts as [string, string, string];
  if (!B64URL.test(h) || !B64URL.test(c) || !B64URL.test(s)) throw bad('token is not a JWT (bad base64url)');
  let header: unknown;
  let claims: unknown;
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
    claims = JSON.parse(Buffer.from(c, 'base64url').toString('utf8'));
  } catch {
    throw bad('token is not a JWT (header or claims are not JSON)');
  }
  if (typeof header !== 'object' || header === null || typeof (header as JwtHeader).alg !== 'string') throw bad('token header has no alg');
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) throw bad('token claims are not a JSON object');
  return { header: header as JwtHeader, claims: claims as JwtClaims, signingInput: `${h}.${c}`, signature: Buffer.from(s, 'base64url') };
}

/** The `aud` claim as a list (JWT allows a single string). */
export function audienceOf(claims: JwtClaims): string[] {
  const a = claims.aud;
  if (a === undefined) return [];
  return Array.isArray(a) ? a.filter((x): x is string => typeof x === 'string') : [a];
}

/** Throws FAILED_PRECONDITION unless the key can sign ES256 (EC P-256 private key). */
export function assertEs256Key(key: KeyObject, whose = 'the key'): void {
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    const kind = key.asymmetricKeyType === 'ec' ? `EC ${key.asymmetricKeyDetails?.namedCurve}` : key.asymmetricKeyType;
    throw new AgentError('FAILED_PRECONDITION', `NSM tokens are signed ES256: ${whose} is ${kind}, an EC P-256 key is needed`);
  }
}

/** Signs claims as an ES256 JWT. */
export function signEs256(claims: JwtClaims, key: KeyObject, opts: { kid?: string } = {}): string {
  assertEs256Key(key);
  const header: JwtHeader = { alg: 'ES256', typ: 'JWT', ...(opts.kid ? { kid: opts.kid } : {}) };
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  const sig = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

/**
 * Verifies an ES256 JWT with `publicKey` (alg must be ES256: `none`, HS* and others are
 * refused). Does not look at `exp`; see checkExpiry. Throws UNAUTHENTICATED. The result is
 * read-only (frozen): a token verified again with the same key returns the same object.
 */
export function verifyEs256(token: string, publicKey: KeyObject): DecodedJwt {
  let known = verifiedTokens.get(publicKey);
  const hit = known?.get(token);
  if (hit) return hit;
  const jwt = verifyUncached(token, publicKey);
  // shared by every later caller of the same token: read-only
  if (Array.isArray(jwt.claims.aud)) Object.freeze(jwt.claims.aud);
  Object.freeze(jwt.claims);
  Object.freeze(jwt.header);
  Object.freeze(jwt);
  if (!known) verifiedTokens.set(publicKey, (known = new RecentMap(MAX_VERIFIED_TOKENS)));
  known.set(token, jwt);
  return jwt;
}

/**
 * Per public key, the tokens verified with it lately: the same bytes verify the same way every
 * time, and a peer sends the same token on its calls within a second (SpiffeTokenSource signs
 * once per claims and second), so the ES256 verification is done once per token.
 * Only successes are kept; expiry is checked apart (checkExpiry) on every use.
 */
const verifiedTokens = new WeakMap<KeyObject, RecentMap<string, DecodedJwt>>();
const MAX_VERIFIED_TOKENS = 64;

function verifyUncached(token: string, publicKey: KeyObject): DecodedJwt {
  const jwt = decodeJwt(token);
  if (jwt.header.alg !== 'ES256') throw bad(`token alg is ${jwt.header.alg}, ES256 is required`);
  if (jwt.signature.length !== 64) throw bad('token signature is not an ES256 signature');
  let ok = false;
  try {
    ok = verify('sha256', Buffer.from(jwt.signingInput), { key: publicKey, dsaEncoding: 'ieee-p1363' }, jwt.signature);
  } catch {
    ok = false;
  }
  if (!ok) throw bad(`token of ${jwt.claims.sub ?? '(no sub)'} is not signed by the expected key`);
  return jwt;
}

/** Throws UNAUTHENTICATED if `exp` is missing or not after `now` (ms). */
export function checkExpiry(claims: JwtClaims, now: number): void {
  if (typeof claims.exp !== 'number' || !Number.isFinite(claims.exp)) throw bad(`token of ${claims.sub ?? '(no sub)'} has no exp`);
  if (claims.exp * 1000 <= now) {
    throw bad(`token of ${claims.sub ?? '(no sub)'} expired at ${new Date(claims.exp * 1000).toISOString()}`);
  }
}

/** Tokens kept per SVID for reuse within their second (a few audiences at a time). */
const MAX_RECENT_TOKENS = 16;

export interface SpiffeTokenOptions {
  /** Add a `kid` header (the SVID leaf's SHA-256 fingerprint, hex); upstream sends none. */
  kid?: boolean;
}

/**
 * The TokenSource of an agent with a SPIFFE identity. `audience` must be the peer's SPIFFE ID;
 * anything else (or none) leaves `aud` out, as upstream does without a TLS peer.
 * Throws UNAVAILABLE without an SVID and FAILED_PRECONDITION for a non-P-256 SVID key.
 */
export class SpiffeTokenSource implements TokenSource {
  /**
   * Per SVID, the tokens signed lately by claims (`aud` and `exp`, whole seconds): a token asked
   * for again within the same second has exactly the same claims, so the one already signed is
   * returned (every connect and refresh asks for a few, and an ES256 signature is not cheap).
   */
  private readonly signed = new WeakMap<X509Svid, RecentMap<string, string>>();

  constructor(
    private readonly source: X509Source,
    private readonly maxLifetimeMs: number,
    private readonly opts: SpiffeTokenOptions = {},
  ) {}

  generate(now: number, audience?: string, peer?: { expiresAt?: number }): Token {
    return this.signWith(this.source.svid(), now, audience, peer);
  }

  /**
   * A token signed with a given SVID of this agent: the one presented on the connection the
   * token travels on (channel.ts), so that the receiver can verify it with the certificate it saw
   * even after this agent's SVID has rotated.
   */
  signWith(svid: X509Svid, now: number, audience?: string, peer?: { expiresAt?: number }): Token {
    assertEs256Key(svid.key, `the SVID key of ${svid.id}`);
    let expires = Math.min(now + this.maxLifetimeMs, svid.expiresAt);
    if (peer?.expiresAt !== undefined) expires = Math.min(expires, peer.expiresAt);
    const claims: JwtClaims = { sub: svid.id };
    if (audience !== undefined && isSpiffeId(audience)) claims.aud = [audience];
    claims.exp = Math.floor(expires / 1000);
    let recent = this.signed.get(svid);
    if (!recent) this.signed.set(svid, (recent = new RecentMap(MAX_RECENT_TOKENS)));
    const key = `${claims.exp} ${claims.aud?.[0] ?? ''}`;
    let token = recent.get(key);
    if (token === undefined) {
      const kid = this.opts.kid ? svid.chain[0]?.fingerprint256.replace(/:/g, '').toLowerCase() : undefined;
      token = signEs256(claims, svid.key, { kid });
      recent.set(key, token);
    }
    return { token, expires };
  }
}

/** The two headers that carry a token on an NSM call. */
export function tokenMetadata(t: Token, md = new grpcJs.Metadata()): grpc.Metadata {
  md.set(TOKEN_HEADER, t.token);
  md.set(TOKEN_EXPIRES_HEADER, rfc3339Nano(t.expires));
  return md;
}

/**
 * Per-call credentials adding a fresh token for the server the channel is connected to
 * (`peer()`, e.g. SpiffeChannel.peer from channel.ts). grpc-js asks for them after the connection
 * is up, so the peer is known. Only compose them with TLS channel credentials.
 */
export function tokenCallCredentials(
  tokens: TokenSource,
  peer: () => PeerIdentity | undefined,
  clock: Clock = realClock,
  /** The SVID this side presented on the connection; SpiffeTokenSource signs with it. */
  presented?: () => X509Svid | undefined,
): grpc.CallCredentials {
  return grpcJs.credentials.createFromMetadataGenerator((_params, cb) => {
    try {
      const p = peer();
      const svid = presented?.();
      const now = clock.now();
      const t = svid && tokens instanceof SpiffeTokenSource ? tokens.signWith(svid, now, p?.id, p) : tokens.generate(now, p?.id, p);
      cb(null, tokenMetadata(t));
    } catch (err) {
      cb(err as Error);
    }
  });
}
