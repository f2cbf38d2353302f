/**
 * The SPIFFE bundle document (SPIFFE Trust Domain and Bundle): an RFC 7517 JWK set whose
 * X.509 authorities are keys with `use: "x509-svid"`, no `kid`, and `x5c` holding one base64
 * DER CA certificate (only the first value counts), beside the key parameters (`kty`, `crv`,
 * `x`, `y` or `n`, `e`). Top level: `keys` (required; empty means every key of the trust
 * domain is revoked), `spiffe_sequence` (bumped on every change) and `spiffe_refresh_hint`
 * (seconds). Keys of other uses (`jwt-svid`, ...) and unknown members are ignored.
 *
 * This is what a SPIFFE bundle endpoint serves (SPIFFE Federation) and what
 * `spire-server bundle show -format spiffe` prints.
 */
import { X509Certificate } from 'node:crypto';
import { AgentError } from '../core/errors';
import { inspect, KU } from './x509';

export interface SpiffeBundle {
  /** The X.509 authorities, in document order. */
  x509Authorities: X509Certificate[];
  /** `spiffe_sequence`, when present. */
  sequence?: number;
  /** `spiffe_refresh_hint` in seconds, when present. */
  refreshHintS?: number;
}

const MAX_BUNDLE_BYTES = 1 << 20;

const invalid = (what: string, msg: string) => new AgentError('BUNDLE_INVALID', `${what}: not a SPIFFE bundle: ${msg}`);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Key parameters of the public key, as a JWK (`kty`, `crv`, `x`, `y` / `n`, `e`). */
function jwkOf(cert: X509Certificate): Record<string, string> {
  const jwk = cert.publicKey.export({ format: 'jwk' }) as Record<string, unknown>;
  const out: Record<string, string> = {};
  for (const k of ['kty', 'crv', 'x', 'y', 'n', 'e']) if (typeof jwk[k] === 'string') out[k] = jwk[k] as string;
  return out;
}

function nonNegativeInteger(doc: Record<string, unknown>, key: string, what: string): number | undefined {
  const v = doc[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw invalid(what, `${key} must be a non-negative integer`);
  return v;
}

/**
 * Parses a SPIFFE bundle document. `what` names it in errors (a file, a URL); `trustDomain`,
 * when given, is the trust domain the bundle must be for: an authority carrying a SPIFFE ID
 * of another trust domain (SPIRE's CAs carry `spiffe://<td>`) is refused with
 * BUNDLE_WRONG_TRUST_DOMAIN. Everything else wrong is BUNDLE_INVALID: not JSON, no `keys`
 * array, an x509-svid key without one CA certificate in `x5c`, or whose key parameters do
 * not match that certificate.
 */
export function parseSpiffeBundle(text: string | Buffer, what: string, trustDomain?: string): SpiffeBundle {
  const raw = typeof text === 'string' ? text : text.toString('utf8');
  if (raw.length > MAX_BUNDLE_BYTES) throw invalid(what, `larger than ${MAX_BUNDLE_BYTES} bytes`);
  let doc: unknown;
  try {
    doc = JSON.parse(raw);
  } catch (err) {
    throw invalid(what, `malformed JSON (${(err as Error).message})`);
  }
  if (!isObject(doc)) throw invalid(what, 'the document is not a JSON object');
  if (!Array.isArray(doc['keys'])) throw invalid(what, 'no "keys" array');
  const sequence = nonNegativeInteger(doc, 'spiffe_sequence', what);
  const refreshHintS = nonNegativeInteger(doc, 'spiffe_refresh_hint', what);
  const x509Authorities: X509Certificate[] = [];
  (doc['keys'] as unknown[]).forEach((key, i) => {
    if (!isObject(key)) throw invalid(what, `keys[${i}] is not an object`);
    if (key['use'] !== 'x509-svid') return;
    const x5c = key['x5c'];
    if (!Array.isArray(x5c) || typeof x5c[0] !== 'string' || x5c[0] === '') throw invalid(what, `keys[${i}] (x509-svid) needs one certificate in x5c`);
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(Buffer.from(x5c[0], 'base64'));
    } catch (err) {
      throw invalid(what, `keys[${i}].x5c[0] is not a DER certificate (${(err as Error).message})`);
    }
    const info = inspect(cert);
    if (!info.isCa || (info.keyUsage !== undefined && !info.keyUsage.includes(KU.keyCertSign))) throw invalid(what, `keys[${i}].x5c[0] is not a CA certificate`);
    const params = jwkOf(cert);
    for (const [k, v] of Object.entries(params)) {
      if (key[k] !== undefined && key[k] !== v) throw invalid(what, `keys[${i}].${k} does not match the public key of its certificate`);
    }
    if (trustDomain !== undefined) {
      for (const uri of info.uris) {
        const m = /^spiffe:\/\/([^/]+)/.exec(uri);
        if (m && m[1] !== trustDomain) {
          throw new AgentError('BUNDLE_WRONG_TRUST_DOMAIN', `${what}: a bundle of trust domain ${m[1]}, not of ${trustDomain} (keys[${i}] is the authority ${uri})`);
        }
      }
    }
    x509Authorities.push(cert);
  });
  return { x509Authorities, ...(sequence !== undefined ? { sequence } : {}), ...(refreshHintS !== undefined ? { refreshHintS } : {}) };
}

/** The SPIFFE bundle document of these X.509 authorities (pretty JSON, newline at the end). */
export function serializeSpiffeBundle(bundle: SpiffeBundle): string {
  const doc = {
    keys: bundle.x509Authorities.map((c) => ({ use: 'x509-svid', ...jwkOf(c), x5c: [c.raw.toString('base64')] })),
    ...(bundle.sequence !== undefined ? { spiffe_sequence: bundle.sequence } : {}),
    ...(bundle.refreshHintS !== undefined ? { spiffe_refresh_hint: bundle.refreshHintS } : {}),
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/** True when both lists hold the same certificates (in any order). */
export function sameAuthorities(a: readonly X509Certificate[], b: readonly X509Certificate[]): boolean {
  if (a.length !== b.length) return false;
  const fps = new Set(a.map((c) => c.fingerprint256));
  return b.every((c) => fps.has(c.fingerprint256));
}
