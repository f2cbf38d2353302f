/**
 * X.509 certificates for SPIFFE: building them (Node has no API for that) and reading the parts
 * Node's X509Certificate does not show (keyUsage bits, basicConstraints, raw SAN entries).
 *
 * Built with the small DER encoder in der.ts rather than a dependency: a certificate is one
 * TBSCertificate structure signed with node:crypto, and the extensions SPIFFE needs are few.
 * Supported signers: EC P-256 (ecdsa-with-SHA256), EC P-384 (ecdsa-with-SHA384) and RSA
 * (sha256WithRSAEncryption). Subject keys can be of any type Node exports as SPKI.
 */
import { createHash, KeyObject, randomBytes, sign, X509Certificate } from 'node:crypto';
import * as der from './der';

export const KU = {
  digitalSignature: 0,
  contentCommitment: 1,
  keyEncipherment: 2,
  dataEncipherment: 3,
  keyAgreement: 4,
  keyCertSign: 5,
  cRLSign: 6,
} as const;

export const OID = {
  countryName: '2.5.4.6',
  organizationName: '2.5.4.10',
  commonName: '2.5.4.3',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  ecdsaWithSha384: '1.2.840.10045.4.3.3',
  sha256WithRsa: '1.2.840.113549.1.1.11',
} as const;

/** A distinguished name as ordered [attribute, value] pairs, e.g. C=US, O=SPIRE. */
export type Name = { C?: string; O?: string; CN?: string };

export interface CertificateTemplate {
  subject: Name;
  /** The subject's public key. */
  publicKey: KeyObject;
  /** The issuer's certificate; absent for a self-signed certificate. */
  issuer?: X509Certificate;
  /** The key that signs: the issuer's private key (or the subject's own when self-signed). */
  signingKey: KeyObject;
  notBefore: number;
  notAfter: number;
  isCa: boolean;
  /** keyUsage bits (KU.*); the extension is always marked critical. */
  keyUsage: number[];
  /** extKeyUsage OIDs; omitted when empty. */
  extKeyUsage?: string[];
  uris?: string[];
  dnsNames?: string[];
  /** Random 16 bytes when absent. */
  serial?: Buffer;
}

function encodeName(n: Name): Buffer {
  const rdns: Buffer[] = [];
  if (n.C !== undefined) rdns.push(der.set(der.seq(der.oid(OID.countryName), der.printable(n.C))));
  if (n.O !== undefined) rdns.push(der.set(der.seq(der.oid(OID.organizationName), der.utf8(n.O))));
  if (n.CN !== undefined) rdns.push(der.set(der.seq(der.oid(OID.commonName), der.utf8(n.CN))));
  return der.seq(...rdns);
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return der.seq(der.oid(id), ...(critical ? [der.bool(true)] : []), der.octets(value));
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
export function keyIdentifier(publicKey: KeyObject): Buffer {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const [, bits] = der.children(der.read(spki).value);
  if (!bits) throw new Error('malformed SubjectPublicKeyInfo');
  return createHash('sha1').update(bits.value.subarray(1)).digest();
}

function signatureAlgorithm(key: KeyObject): { algId: Buffer; hash: string } {
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') return { algId: der.seq(der.oid(OID.ecdsaWithSha256)), hash: 'sha256' };
    if (curve === 'secp384r1') return { algId: der.seq(der.oid(OID.ecdsaWithSha384)), hash: 'sha384' };
    throw new Error(`unsupported signing curve ${curve}`);
  }
  if (key.asymmetricKeyType === 'rsa') return { algId: der.seq(der.oid(OID.sha256WithRsa), der.nul()), hash: 'sha256' };
  throw new Error(`unsupported signing key type ${key.asymmetricKeyType}`);
}

/** Builds and signs a certificate. */
export function createCertificate(t: CertificateTemplate): X509Certificate {
  const { algId, hash } = signatureAlgorithm(t.signingKey);
  const issuerName = t.issuer ? inspect(t.issuer).subjectRaw : encodeName(t.subject);
  const serial = Buffer.from(t.serial ?? randomBytes(16));
  serial[0] = (serial[0] ?? 0) & 0x7f; // positive, as RFC 5280 requires

  const exts: Buffer[] = [
    extension(OID.basicConstraints, true, t.isCa ? der.seq(der.bool(true)) : der.seq()),
    extension(OID.keyUsage, true, der.namedBits(t.keyUsage)),
  ];
  if (t.extKeyUsage?.length) exts.push(extension(OID.extKeyUsage, false, der.seq(...t.extKeyUsage.map(der.oid))));
  exts.push(extension(OID.subjectKeyIdentifier, false, der.octets(keyIdentifier(t.publicKey))));
  const akiKey = t.issuer ? t.issuer.publicKey : t.publicKey;
  exts.push(extension(OID.authorityKeyIdentifier, false, der.seq(der.implicit(0, keyIdentifier(akiKey)))));
  const names = [...(t.dnsNames ?? []).map((d) => der.implicit(2, Buffer.from(d, 'ascii'))), ...(t.uris ?? []).map((u) => der.implicit(6, Buffer.from(u, 'ascii')))];
  if (names.length) {
    // With an empty subject the SAN must be critical (RFC 5280 §4.2.1.6).
    const emptySubject = t.subject.C === undefined && t.subject.O === undefined && t.subject.CN === undefined;
    exts.push(extension(OID.subjectAltName, emptySubject, der.seq(...names)));
  }

  const tbs = der.seq(
    der.explicit(0, der.uint(2)),
    der.uint(serial),
    algId,
    issuerName,
    der.seq(der.time(t.notBefore), der.time(t.notAfter)),
    encodeName(t.subject),
    t.publicKey.export({ type: 'spki', format: 'der' }),
    der.explicit(3, der.seq(...exts)),
  );
  const signature = sign(hash, tbs, t.signingKey);
  return new X509Certificate(der.seq(tbs, algId, der.bitString(signature)));
}

export interface CertificateInfo {
  /** DER of the subject Name, for use as the issuer of certificates this one signs. */
  subjectRaw: Buffer;
  /** basicConstraints cA; false when the extension is absent. */
  isCa: boolean;
  /** Set keyUsage bits; undefined when the extension is absent. */
  keyUsage: number[] | undefined;
  keyUsageCritical: boolean;
  /** extKeyUsage OIDs; undefined when the extension is absent. */
  extKeyUsage: string[] | undefined;
  /** URI SAN entries, exactly as encoded. */
  uris: string[];
  dnsNames: string[];
  /** Number of SAN entries of any type. */
  sanCount: number;
  sanCritical: boolean;
}

/** Reads the fields SPIFFE validation needs from the DER. Throws on malformed input. */
export function inspect(cert: X509Certificate | Buffer): CertificateInfo {
  const raw = cert instanceof X509Certificate ? cert.raw : cert;
  const [tbsNode] = der.children(der.read(raw).value);
  if (!tbsNode || tbsNode.tag !== der.TAG.SEQUENCE) throw new der.DerError('malformed certificate');
  const fields = der.children(tbsNode.value);
  let i = fields[0]?.tag === 0xa0 ? 1 : 0; // optional version
  i += 2; // serial, signature algorithm
  i += 2; // issuer, validity
  const subject = fields[i];
  if (!subject) throw new der.DerError('certificate without a subject');
  const info: CertificateInfo = {
    subjectRaw: Buffer.from(subject.raw),
    isCa: false,
    keyUsage: undefined,
    keyUsageCritical: false,
    extKeyUsage: undefined,
    uris: [],
    dnsNames: [],
    sanCount: 0,
    sanCritical: false,
  };
  const extsWrapper = fields.find((f) => f.tag === 0xa3);
  if (!extsWrapper) return info;
  const [extSeq] = der.children(extsWrapper.value);
  for (const ext of der.children(extSeq?.value ?? Buffer.alloc(0))) {
    const parts = der.children(ext.value);
    const id = der.readOid(parts[0] ?? ({} as der.Node));
    const critical = parts.length === 3 ? der.readBool(parts[1] as der.Node) : false;
    const value = parts[parts.length - 1];
    if (!value || value.tag !== der.TAG.OCTET_STRING) throw new der.DerError('malformed extension');
    const inner = der.read(value.value);
    switch (id) {
      case OID.basicConstraints: {
        const first = der.children(inner.value)[0];
        info.isCa = first?.tag === der.TAG.BOOLEAN ? der.readBool(first) : false;
        break;
      }
      case OID.keyUsage:
        info.keyUsage = der.readNamedBits(inner);
        info.keyUsageCritical = critical;
        break;
      case OID.extKeyUsage:
        info.extKeyUsage = der.children(inner.value).map(der.readOid);
        break;
      case OID.subjectAltName:
        info.sanCritical = critical;
        for (const gn of der.children(inner.value)) {
          info.sanCount++;
          if (gn.tag === 0x86) info.uris.push(gn.value.toString('latin1'));
          else if (gn.tag === 0x82) info.dnsNames.push(gn.value.toString('latin1'));
        }
        break;
      default:
        break;
    }
  }
  return info;
}

/** NotAfter as epoch milliseconds. */
export const notAfter = (c: X509Certificate): number => Date.parse(c.validTo);
export const notBefore = (c: X509Certificate): number => Date.parse(c.validFrom);

/** Splits PEM text into certificates (in order); non-certificate blocks are ignored. */
export function certificatesFromPem(pem: string): X509Certificate[] {
  const out: X509Certificate[] = [];
  const re = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
  for (const m of pem.matchAll(re)) out.push(new X509Certificate(m[0]));
  return out;
}

/** Concatenated DER (the Workload API's encoding) to certificates. */
export function certificatesFromDer(buf: Buffer): X509Certificate[] {
  return der.splitConcatenated(buf).map((b) => new X509Certificate(b));
}

export const toPem = (certs: readonly X509Certificate[]): string => certs.map((c) => c.toString()).join('');
export const toDer = (certs: readonly X509Certificate[]): Buffer => Buffer.concat(certs.map((c) => c.raw));
