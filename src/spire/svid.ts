/**
 * X.509-SVIDs and bundles as the rest of the agent sees them, whatever their source (Workload
 * API, files, development CA), and the checks an SVID must pass before it is used (the ones
 * go-spiffe makes when parsing, as the SPIFFE X509-SVID standard asks):
 * - the chain is not empty; the leaf has exactly one URI SAN, a SPIFFE ID with a path, equal to
 *   the ID the source announced (when it announced one);
 * - the leaf is not a CA, has keyUsage with digitalSignature and without keyCertSign/cRLSign;
 * - every further certificate in the chain is a CA with keyCertSign;
 * - the private key matches the leaf's public key.
 */
import { createPrivateKey, KeyObject, X509Certificate } from 'node:crypto';
import { AgentError } from '../core/errors';
import { parseWorkloadId } from './id';
import { certificatesFromDer, inspect, KU, notAfter } from './x509';

export interface X509Svid {
  /** The SPIFFE ID (the leaf's URI SAN). */
  id: string;
  trustDomain: string;
  /** Leaf first, then intermediates (never the root). */
  chain: X509Certificate[];
  key: KeyObject;
  /** The operator's label from the Workload API; '' if none. */
  hint: string;
  /** The leaf's NotAfter, epoch milliseconds. */
  expiresAt: number;
}

/** Trust domain name (no scheme) → its X.509 authorities. Never merged across trust domains. */
export type Bundles = ReadonlyMap<string, readonly X509Certificate[]>;

/** What a source knows at one moment: SVIDs (default first) and the bundles it trusts. */
export interface X509Context {
  svids: readonly X509Svid[];
  bundles: Bundles;
}

const invalid = (msg: string) => new AgentError('INVALID_ARGUMENT', msg);

/** The single SPIFFE ID of a leaf certificate; throws if it does not carry exactly one URI SAN. */
export function spiffeIdOf(leaf: X509Certificate): string {
  const info = inspect(leaf);
  if (info.uris.length !== 1) throw invalid(`certificate has ${info.uris.length} URI SANs, an SVID needs exactly one`);
  const uri = info.uris[0] as string;
  return parseWorkloadId(uri).id;
}

/** The leaf checks shared by SVID parsing and peer verification; throws INVALID_ARGUMENT. */
export function checkLeaf(leaf: X509Certificate): string {
  const id = spiffeIdOf(leaf);
  const info = inspect(leaf);
  if (info.isCa || leaf.ca) throw invalid(`leaf certificate of ${id} is a CA`);
  if (!info.keyUsage) throw invalid(`leaf certificate of ${id} has no keyUsage extension`);
  if (!info.keyUsage.includes(KU.digitalSignature)) throw invalid(`leaf certificate of ${id} lacks the digitalSignature key usage`);
  if (info.keyUsage.includes(KU.keyCertSign)) throw invalid(`leaf certificate of ${id} has the keyCertSign key usage`);
  if (info.keyUsage.includes(KU.cRLSign)) throw invalid(`leaf certificate of ${id} has the cRLSign key usage`);
  return id;
}

/** Checks the intermediates of a chain: each must be a CA allowed to sign certificates. */
export function checkIntermediates(chain: readonly X509Certificate[]): void {
  for (const c of chain.slice(1)) {
    const info = inspect(c);
    if (!info.isCa) throw invalid(`intermediate certificate ${c.subject.replace(/\n/g, ',')} is not a CA`);
    if (!info.keyUsage?.includes(KU.keyCertSign)) throw invalid(`intermediate certificate ${c.subject.replace(/\n/g, ',')} lacks keyCertSign`);
  }
}

/**
 * Builds a validated SVID. `expectedId`, when given, must equal the leaf's ID (the Workload
 * API's spiffe_id field). Throws INVALID_ARGUMENT naming what is wrong.
 */
export function makeSvid(chain: X509Certificate[], key: KeyObject, opts: { expectedId?: string; hint?: string } = {}): X509Svid {
  const leaf = chain[0];
  if (!leaf) throw invalid('the SVID certificate chain is empty');
  const id = checkLeaf(leaf);
  if (opts.expectedId !== undefined && opts.expectedId !== id) {
    throw invalid(`the SVID says ${opts.expectedId} but its certificate carries ${id}`);
  }
  checkIntermediates(chain);
  if (key.type !== 'private') throw invalid(`the key of ${id} is not a private key`);
  if (!leaf.checkPrivateKey(key)) throw invalid(`the private key does not match the certificate of ${id}`);
  return { id, trustDomain: parseWorkloadId(id).trustDomain, chain, key, hint: opts.hint ?? '', expiresAt: notAfter(leaf) };
}

/** An SVID from the Workload API's encoding: concatenated DER chain and PKCS#8 DER key. */
export function svidFromDer(id: string, chainDer: Buffer, keyDer: Buffer, hint = ''): X509Svid {
  if (!id) throw invalid('the SVID has no spiffe_id');
  if (!chainDer.length) throw invalid(`the SVID of ${id} has no certificates`);
  if (!keyDer.length) throw invalid(`the SVID of ${id} has no private key`);
  let chain: X509Certificate[];
  try {
    chain = certificatesFromDer(chainDer);
  } catch (err) {
    throw invalid(`the certificates of ${id} do not parse: ${(err as Error).message}`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: keyDer, format: 'der', type: 'pkcs8' });
  } catch (err) {
    throw invalid(`the private key of ${id} does not parse as PKCS#8: ${(err as Error).message}`);
  }
  return makeSvid(chain, key, { expectedId: id, hint });
}

/** A bundle from concatenated DER; every certificate must be a CA. */
export function bundleFromDer(td: string, buf: Buffer): X509Certificate[] {
  let certs: X509Certificate[];
  try {
    certs = certificatesFromDer(buf);
  } catch (err) {
    throw invalid(`the bundle of ${td} does not parse: ${(err as Error).message}`);
  }
  return certs;
}

/** Picks the SVID to present: the one with `hint`, else the first (the default identity). */
export function pickSvid(ctx: X509Context, hint?: string): X509Svid | undefined {
  if (hint) return ctx.svids.find((s) => s.hint === hint);
  return ctx.svids[0];
}
