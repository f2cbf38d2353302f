/**
 * A small local certificate authority for one trust domain, issuing X.509-SVIDs in SPIRE's
 * certificate profile (SPIRE's pkg/server/credtemplate):
 * - CA: self-signed, Subject C=US, O=SPIFFE, cA=true, keyUsage keyCertSign|cRLSign (critical),
 *   URI SAN spiffe://<td>, EC P-256;
 * - SVID: fresh key per issuance, Subject C=US, O=SPIRE (CN = first DNS name, if any),
 *   cA=false, keyUsage digitalSignature|keyEncipherment|keyAgreement (critical), EKU
 *   serverAuth+clientAuth, exactly one URI SAN, NotBefore = now − 10 s,
 *   NotAfter = min(now + ttl, CA NotAfter).
 *
 * Used by the development identity source (`identity: dev`), `nsm-agent identity`, and the
 * Workload API test double. Persisted as `ca.pem` + `ca.key` (PKCS#8 PEM, mode 0600) in a
 * directory of mode 0700.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, KeyObject, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { AgentError } from '../core/errors';
import { parseSpiffeId, parseWorkloadId } from './id';
import { makeSvid, X509Svid } from './svid';
import { certificatesFromPem, createCertificate, inspect, KU, notAfter, OID } from './x509';

export type KeyType = 'ec-p256' | 'ec-p384' | 'rsa-2048';

const DER = { privateKeyEncoding: { type: 'pkcs8', format: 'der' }, publicKeyEncoding: { type: 'spki', format: 'der' } } as const;

/**
 * A fresh key pair. The generator's output is encoded and imported anew: in Node 20 the key
 * objects generateKeyPair(Sync) returns share a lock with the generator's job, and a garbage
 * collection that frees the job while a key method holds that lock (asymmetricKeyDetails,
 * export) deadlocks the process. Imported keys have locks of their own.
 */
export function generateKey(type: KeyType = 'ec-p256'): { publicKey: KeyObject; privateKey: KeyObject } {
  const der: { privateKey: Buffer; publicKey: Buffer } =
    type === 'rsa-2048'
      ? generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: DER.privateKeyEncoding, publicKeyEncoding: DER.publicKeyEncoding })
      : generateKeyPairSync('ec', { namedCurve: type === 'ec-p384' ? 'P-384' : 'P-256', privateKeyEncoding: DER.privateKeyEncoding, publicKeyEncoding: DER.publicKeyEncoding });
  return {
    privateKey: createPrivateKey({ key: der.privateKey, format: 'der', type: 'pkcs8' }),
    publicKey: createPublicKey({ key: der.publicKey, format: 'der', type: 'spki' }),
  };
}

/** SPIRE back-dates NotBefore by 10 s to tolerate clock skew between hosts. */
export const BACKDATE_MS = 10_000;
export const DEFAULT_CA_TTL_MS = 24 * 3600_000;
export const DEFAULT_SVID_TTL_MS = 3600_000;

export interface IssueOptions {
  ttlMs?: number;
  now?: number;
  keyType?: KeyType;
  dnsNames?: string[];
  hint?: string;
}

export class LocalCa {
  private constructor(
    readonly trustDomain: string,
    /** This CA's certificate. */
    readonly cert: X509Certificate,
    readonly key: KeyObject,
    /** Certificates between this CA and the root, this CA first; [] for a root. */
    private readonly upChain: X509Certificate[],
    /** The self-signed root at the top. */
    readonly root: X509Certificate,
  ) {}

  /** A new self-signed root CA. */
  static create(opts: { trustDomain: string; ttlMs?: number; now?: number }): LocalCa {
    const td = parseSpiffeId(`spiffe://${opts.trustDomain}`).trustDomain;
    const now = opts.now ?? Date.now();
    const keys = generateKey('ec-p256');
    const cert = createCertificate({
      subject: { C: 'US', O: 'SPIFFE' },
      publicKey: keys.publicKey,
      signingKey: keys.privateKey,
      notBefore: now - BACKDATE_MS,
      notAfter: now + (opts.ttlMs ?? DEFAULT_CA_TTL_MS),
      isCa: true,
      keyUsage: [KU.keyCertSign, KU.cRLSign],
      uris: [`spiffe://${td}`],
    });
    return new LocalCa(td, cert, keys.privateKey, [], cert);
  }

  /** An intermediate CA signed by this one (as SPIRE with an UpstreamAuthority). */
  intermediate(opts: { ttlMs?: number; now?: number } = {}): LocalCa {
    const now = opts.now ?? Date.now();
    const keys = generateKey('ec-p256');
    const cert = createCertificate({
      subject: { C: 'US', O: 'SPIFFE', CN: 'intermediate' },
      publicKey: keys.publicKey,
      issuer: this.cert,
      signingKey: this.key,
      notBefore: now - BACKDATE_MS,
      notAfter: Math.min(now + (opts.ttlMs ?? DEFAULT_CA_TTL_MS), notAfter(this.cert)),
      isCa: true,
      keyUsage: [KU.keyCertSign, KU.cRLSign],
      uris: [`spiffe://${this.trustDomain}`],
    });
    return new LocalCa(this.trustDomain, cert, keys.privateKey, [cert, ...this.upChain], this.root);
  }

  /** The trust bundle to give relying parties: the root. */
  bundle(): X509Certificate[] {
    return [this.root];
  }

  get expiresAt(): number {
    return notAfter(this.cert);
  }

  /** Issues an SVID for `id` (a workload ID in this CA's trust domain). */
  issue(id: string, opts: IssueOptions = {}): X509Svid {
    const parsed = parseWorkloadId(id);
    if (parsed.trustDomain !== this.trustDomain) {
      throw new AgentError('INVALID_ARGUMENT', `${id} is not in trust domain ${this.trustDomain}`);
    }
    const now = opts.now ?? Date.now();
    const keys = generateKey(opts.keyType);
    const dns = opts.dnsNames ?? [];
    const leaf = createCertificate({
      subject: { C: 'US', O: 'SPIRE', ...(dns[0] ? { CN: dns[0] } : {}) },
      publicKey: keys.publicKey,
      issuer: this.cert,
      signingKey: this.key,
      notBefore: now - BACKDATE_MS,
      notAfter: Math.min(now + (opts.ttlMs ?? DEFAULT_SVID_TTL_MS), notAfter(this.cert)),
      isCa: false,
      keyUsage: [KU.digitalSignature, KU.keyEncipherment, KU.keyAgreement],
      extKeyUsage: [OID.serverAuth, OID.clientAuth],
      uris: [id],
      dnsNames: dns,
    });
    return makeSvid([leaf, ...this.upChain], keys.privateKey, { expectedId: id, hint: opts.hint });
  }

  /** Writes ca.pem and ca.key (0600) into `dir` (created 0700), atomically per file. */
  save(dir: string): void {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeAtomic(path.join(dir, 'ca.key'), this.key.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
    writeAtomic(path.join(dir, 'ca.pem'), this.cert.toString(), 0o644);
  }

  /** Whether `dir` holds a saved CA. */
  static exists(dir: string): boolean {
    return existsSync(path.join(dir, 'ca.pem')) && existsSync(path.join(dir, 'ca.key'));
  }

  /** Reads a root CA saved by `save`; throws INVALID_ARGUMENT naming the file and the problem. */
  static load(dir: string): LocalCa {
    const certFile = path.join(dir, 'ca.pem');
    const keyFile = path.join(dir, 'ca.key');
    let certs: X509Certificate[];
    let key: KeyObject;
    try {
      certs = certificatesFromPem(readFileSync(certFile, 'utf8'));
    } catch (err) {
      throw new AgentError('INVALID_ARGUMENT', `${certFile}: ${(err as Error).message}`);
    }
    try {
      key = createPrivateKey(readFileSync(keyFile));
    } catch (err) {
      throw new AgentError('INVALID_ARGUMENT', `${keyFile}: ${(err as Error).message}`);
    }
    const cert = certs[0];
    if (!cert) throw new AgentError('INVALID_ARGUMENT', `${certFile}: no certificate`);
    const info = inspect(cert);
    if (!info.isCa) throw new AgentError('INVALID_ARGUMENT', `${certFile}: not a CA certificate`);
    if (!cert.checkPrivateKey(key)) throw new AgentError('INVALID_ARGUMENT', `${keyFile}: does not match ${certFile}`);
    const uri = info.uris[0];
    if (info.uris.length !== 1 || !uri) throw new AgentError('INVALID_ARGUMENT', `${certFile}: a trust domain CA needs one URI SAN spiffe://<trust domain>`);
    const td = parseSpiffeId(uri);
    if (td.path !== '') throw new AgentError('INVALID_ARGUMENT', `${certFile}: URI SAN ${uri} is not a trust domain ID`);
    return new LocalCa(td.trustDomain, cert, key, [], cert);
  }
}

/** Writes through a temporary file and rename, so readers never see half a file. */
export function writeAtomic(file: string, data: string | Buffer, mode: number): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, file);
}
