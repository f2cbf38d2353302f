/**
 * NSM tokens as the chain sees them. A token is what a hop presents to the next (NSM's
 * nsm-client-token): a JWT whose `exp` bounds how long the connection may live without a
 * refresh. Chain elements (src/networkservice/updatetoken) and the gRPC glue use these types;
 * the signing implementation, SpiffeTokenSource, is in src/spire/token.ts. Kept here, below
 * both, so that src/spire need not import src/networkservice.
 */
import { Key } from './ctx';

export interface Token {
  token: string;
  /** Expiry, clock milliseconds. */
  expires: number;
}

export interface TokenSource {
  /**
   * A token for a call to `audience` (the peer's SPIFFE ID, if known). `peer.expiresAt` (the
   * peer certificate's NotAfter, ms) caps the expiry when known. May throw (no identity yet).
   */
  generate(now: number, audience?: string, peer?: { expiresAt?: number }): Token;
}

/** The token the caller presented with this call (from gRPC headers, or set in-process). */
export const INCOMING_TOKEN = new Key<Token>('incoming-token');
