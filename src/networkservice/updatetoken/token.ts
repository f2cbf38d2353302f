/**
 * Token sources. A token is what a hop presents to the next (NSM's nsm-client-token): a JWT
 * whose `exp` bounds how long the connection may live without a refresh. The SPIFFE source
 * (src/spire) signs ES256 with the SVID key; `unsignedTokens` is for the local unix socket
 * before identities exist, where peers are authenticated by socket permissions.
 */
import { Key } from '../../core/ctx';

export interface Token {
  token: string;
  /** Expiry, clock milliseconds. */
  expires: number;
}

export interface TokenSource {
  /**
   * A token for a call to `audience` (the peer's SPIFFE ID, if known). `peer.expiresAt` (the
   * peer certificate's NotAfter, ms) caps the expiry when known. May throw (no identity yet).
   * The signed implementation is SpiffeTokenSource in src/spire/token.ts.
   */
  generate(now: number, audience?: string, peer?: { expiresAt?: number }): Token;
}

/** The token the caller presented with this call (from gRPC headers, or set in-process). */
export const INCOMING_TOKEN = new Key<Token>('incoming-token');

function b64url(obj: unknown): string {
  return Buffer.from(JSON.stringify(obj)).toString('base64url');
}

/** JWTs with alg "none": decodable, expiring, not verifiable. */
export function unsignedTokens(subject: string, lifetimeMs: number): TokenSource {
  return {
    generate(now, audience) {
      const expires = now + lifetimeMs;
      const claims = { sub: subject, aud: audience ? [audience] : undefined, exp: Math.floor(expires / 1000) };
      return { token: `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claims)}.`, expires };
    },
  };
}
