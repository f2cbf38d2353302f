/**
 * NSM's default authorization policies (upstream sdk pkg/tools/opa, in rego) as plain
 * functions over a path of tokens:
 * - tokens_valid: every token decodes as a JWT (an empty path is valid);
 * - tokens_expired: every token's `exp` is after now;
 * - tokens_chained: for each neighbouring pair, `aud` of the first contains `sub` of the next;
 * - prev_token_signed (server): the token at index−1 verifies (ES256) with the public key of
 *   the TLS peer's certificate; at index 0 there is no previous hop and it passes;
 * - next_token_signed (client): the token at index+1 verifies with the server's certificate.
 * A policy returns undefined to allow, or the reason it refuses.
 */
import type { PeerIdentity } from '../../spire/peer';
import { audienceOf, checkExpiry, decodeJwt, DecodedJwt, verifyEs256 } from '../../spire/token';

export interface PolicyInput {
  /** The position of the hop that evaluates (NSM path.index). */
  index: number;
  /** The tokens of the segments considered, in path order. */
  tokens: readonly string[];
  /** The TLS peer (server side: the caller; client side: the server). */
  peer?: PeerIdentity;
  now: number;
}

export interface Policy {
  readonly name: string;
  check(input: PolicyInput, decoded: readonly (DecodedJwt | undefined)[]): string | undefined;
}

const seg = (i: number, d: DecodedJwt | undefined) => `segment ${i}${d?.claims.sub ? ` (${d.claims.sub})` : ''}`;

export const tokensValid: Policy = {
  name: 'tokens_valid',
  check(input, decoded) {
    for (let i = 0; i < input.tokens.length; i++) {
      if (!decoded[i]) {
        try {
          decodeJwt(input.tokens[i] ?? '');
        } catch (err) {
          return `segment ${i}: ${(err as Error).message}`;
        }
      }
    }
    return undefined;
  },
};

export const tokensExpired: Policy = {
  name: 'tokens_expired',
  check(input, decoded) {
    for (const [i, d] of decoded.entries()) {
      if (!d) continue; // tokens_valid reports it
      try {
        checkExpiry(d.claims, input.now);
      } catch (err) {
        return `${seg(i, d)}: ${(err as Error).message}`;
      }
    }
    return undefined;
  },
};

export const tokensChained: Policy = {
  name: 'tokens_chained',
  check(_input, decoded) {
    for (let i = 0; i + 1 < decoded.length; i++) {
      const a = decoded[i];
      const b = decoded[i + 1];
      if (!a || !b) continue;
      const sub = b.claims.sub;
      if (typeof sub !== 'string' || !audienceOf(a.claims).includes(sub)) {
        return `the token of ${seg(i, a)} is not addressed to ${sub ?? 'the next hop'} (aud ${JSON.stringify(audienceOf(a.claims))})`;
      }
    }
    return undefined;
  },
};

function signedBy(input: PolicyInput, at: number, who: string): string | undefined {
  if (!input.peer) return `no TLS peer certificate to check the ${who}'s token against`;
  const token = input.tokens[at];
  if (token === undefined) return `no token for the ${who} (segment ${at})`;
  try {
    verifyEs256(token, input.peer.publicKey);
  } catch (err) {
    return `the ${who}'s token (segment ${at}) is not signed by the TLS peer ${input.peer.id}: ${(err as Error).message}`;
  }
  return undefined;
}

export const prevTokenSigned: Policy = {
  name: 'prev_token_signed',
  check: (input) => (input.index === 0 ? undefined : signedBy(input, input.index - 1, 'previous hop')),
};

export const nextTokenSigned: Policy = {
  name: 'next_token_signed',
  check: (input) => signedBy(input, input.index + 1, 'next hop'),
};

export const COMMON_POLICIES: readonly Policy[] = [tokensValid, tokensExpired, tokensChained];
/** nsmgr / forwarder / NSE server defaults: common + server. */
export const SERVER_POLICIES: readonly Policy[] = [...COMMON_POLICIES, prevTokenSigned];
/** NSC client defaults: common + client. */
export const CLIENT_POLICIES: readonly Policy[] = [...COMMON_POLICIES, nextTokenSigned];

/** Decodes each token once (undefined where it does not decode). */
export function decodeAll(tokens: readonly string[]): (DecodedJwt | undefined)[] {
  return tokens.map((t) => {
    try {
      return decodeJwt(t);
    } catch {
      return undefined;
    }
  });
}

/** The first refusal as `policy: reason`, or undefined if every policy allows. */
export function evaluate(policies: readonly Policy[], input: PolicyInput): string | undefined {
  const decoded = decodeAll(input.tokens);
  for (const p of policies) {
    const why = p.check(input, decoded);
    if (why !== undefined) return `${p.name}: ${why}`;
  }
  return undefined;
}

/** The `sub` of a token without verifying it ('' if it does not decode). */
export function subjectOf(token: string | undefined): string {
  if (!token) return '';
  try {
    const sub = decodeJwt(token).claims.sub;
    return typeof sub === 'string' ? sub : '';
  } catch {
    return '';
  }
}
