// SPDX-License-Identifier: Apache-2.0
/**
 * WireGuard (Curve25519 / X25519) keys.
 *
 * Text form is exactly what `wg genkey` / `wg pubkey` print: standard base64
 * of the raw 32-byte key (44 characters, one '=' of padding). The UAPI wants
 * the same bytes as 64 lowercase hex characters ({@link keyToHex}).
 *
 * Contract: a private key made here, piped through `wg pubkey`, yields the
 * same public key as {@link publicKeyOf} (checked by the integration test).
 * OpenSSL clamps X25519 private keys at generation, like `wg genkey`; and
 * X25519 clamps again on use anyway, so derived public keys always agree.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { AgentError } from '../../core/errors';

export const WG_KEY_LEN = 32;

export interface WgKeyPair {
  /** base64, as `wg genkey` prints it. Secret: never log it. */
  privateKey: string;
  /** base64, as `wg pubkey` prints it. */
  publicKey: string;
}

// 32 bytes -> 43 base64 chars + '='; the 43rd char carries only 4 data bits,
// so the low 2 bits of its index must be zero (strict, canonical encoding).
const KEY_RE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

// PKCS#8 DER header for a raw X25519 private key (RFC 8410); Node 20 cannot
// import a JWK private key without its public part.
const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/**
 * A fresh key pair (one per connection; the caller keeps it across refreshes). Taken from the
 * generator's DER output, never from its key objects: in Node 20 those share a lock with the
 * generator's job, and a garbage collection that frees the job while a key method holds that
 * lock deadlocks the process. The raw keys are the last 32 bytes of PKCS#8 and SPKI (RFC 8410).
 */
export function generateKeyPair(): WgKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('x25519', {
    privateKeyEncoding: { type: 'pkcs8', format: 'der' },
    publicKeyEncoding: { type: 'spki', format: 'der' },
  });
  if (privateKey.length !== PKCS8_X25519_PREFIX.length + 32 || publicKey.length < 32) throw new AgentError('INTERNAL', 'x25519 key encoding is not RFC 8410');
  return {
    privateKey: privateKey.subarray(privateKey.length - 32).toString('base64'),
    publicKey: publicKey.subarray(publicKey.length - 32).toString('base64'),
  };
}

/** The public key for a base64 private key (like `wg pubkey`). */
export function publicKeyOf(privateKey: string): string {
  const raw = parseKey(privateKey, 'private');
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_X25519_PREFIX, raw]), format: 'der', type: 'pkcs8' });
  const x = createPublicKey(key).export({ format: 'jwk' }).x;
  if (x === undefined) throw new AgentError('INTERNAL', 'x25519 public key export failed');
  return Buffer.from(x, 'base64url').toString('base64');
}

function parseKey(text: string, what: 'public' | 'private'): Buffer {
  if (typeof text !== 'string' || !KEY_RE.test(text)) {
    throw new AgentError('INVALID_ARGUMENT', `malformed WireGuard ${what} key`);
  }
  const raw = Buffer.from(text, 'base64');
  if (raw.length !== WG_KEY_LEN) throw new AgentError('INVALID_ARGUMENT', `malformed WireGuard ${what} key`);
  return raw;
}

/**
 * Checks a peer's public key as received in a mechanism (`src_public_key` /
 * `dst_public_key`): base64 of exactly 32 bytes. Returns the raw bytes;
 * otherwise throws AgentError INVALID_ARGUMENT "malformed WireGuard public key".
 */
export function validatePublicKey(text: string): Buffer {
  return parseKey(text, 'public');
}

/** Same check for a private key (message says "private key"). */
export function validatePrivateKey(text: string): Buffer {
  return parseKey(text, 'private');
}

/** base64 key -> 64 hex chars (UAPI wire form). Validates. */
export function keyToHex(text: string, what: 'public' | 'private' = 'public'): string {
  return parseKey(text, what).toString('hex');
}

/** 64 hex chars (UAPI) -> base64 key. */
export function hexToKey(hex: string): string {
  if (!/^[0-9a-f]{64}$/i.test(hex)) throw new AgentError('INVALID_ARGUMENT', 'malformed WireGuard key (hex)');
  return Buffer.from(hex, 'hex').toString('base64');
}
