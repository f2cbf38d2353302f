import { describe, it, expect, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { generateKey } from '../../../src/spire/ca';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as der from '../../../src/spire/der';
import { certificatesFromDer, certificatesFromPem, createCertificate, inspect, KU, notAfter, OID, toDer, toPem } from '../../../src/spire/x509';

const dir = mkdtempSync(path.join(tmpdir(), 'nsm-x509-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const now = Date.now();
function makeCa(curve = 'P-256') {
  const keys = generateKey(curve === 'P-384' ? 'ec-p384' : 'ec-p256');
  const cert = createCertificate({
    subject: { C: 'US', O: 'SPIFFE' },
    publicKey: keys.publicKey,
    signingKey: keys.privateKey,
    notBefore: now - 10_000,
    notAfter: now + 3_600_000,
    isCa: true,
    keyUsage: [KU.keyCertSign, KU.cRLSign],
    uris: ['spiffe://example.org'],
  });
  return { cert, key: keys.privateKey };
}

describe('der', () => {
  it('encodes lengths, integers, OIDs, bits and times as DER', () => {
    expect(der.tlv(0x04, Buffer.alloc(200)).subarray(0, 3)).toEqual(Buffer.from([0x04, 0x81, 200]));
    expect(der.tlv(0x04, Buffer.alloc(300)).subarray(0, 4)).toEqual(Buffer.from([0x04, 0x82, 0x01, 0x2c]));
    expect(der.uint(0)).toEqual(Buffer.from([2, 1, 0]));
    expect(der.uint(2)).toEqual(Buffer.from([2, 1, 2]));
    expect(der.uint(0x80)).toEqual(Buffer.from([2, 2, 0, 0x80]));
    expect(der.uint(Buffer.from([0, 0, 1]))).toEqual(Buffer.from([2, 1, 1]));
    expect(der.oid('1.2.840.10045.4.3.2').toString('hex')).toBe('06082a8648ce3d040302');
    expect(der.readOid(der.read(der.oid('2.5.29.17')))).toBe('2.5.29.17');
    // digitalSignature | keyCertSign: bits 0 and 5 -> one byte 0b10000100, 2 unused bits
    expect(der.namedBits([0, 5])).toEqual(Buffer.from([0x03, 0x02, 0x02, 0x84]));
    expect(der.readNamedBits(der.read(der.namedBits([0, 2, 4])))).toEqual([0, 2, 4]);
    expect(der.time(Date.UTC(2030, 0, 2, 3, 4, 5)).toString('latin1', 2)).toBe('300102030405Z');
    expect(der.time(Date.UTC(2050, 0, 2, 3, 4, 5))[0]).toBe(der.TAG.GENERALIZED_TIME);
  });

  it('refuses truncated input and lengths past the end', () => {
    expect(() => der.read(Buffer.from([0x30]))).toThrow(/truncated/);
    expect(() => der.read(Buffer.from([0x30, 0x05, 0x01]))).toThrow(/past the end/);
    expect(() => der.splitConcatenated(Buffer.from([0x04, 0x00]))).toThrow(/SEQUENCE/);
  });
});

describe('x509', () => {
  it('builds a CA and an SVID that openssl verifies, with the SPIFFE profile', () => {
    const ca = makeCa();
    const keys = generateKey();
    const leaf = createCertificate({
      subject: { C: 'US', O: 'SPIRE' },
      publicKey: keys.publicKey,
      issuer: ca.cert,
      signingKey: ca.key,
      notBefore: now - 10_000,
      notAfter: now + 600_000,
      isCa: false,
      keyUsage: [KU.digitalSignature, KU.keyEncipherment, KU.keyAgreement],
      extKeyUsage: [OID.serverAuth, OID.clientAuth],
      uris: ['spiffe://example.org/ns/x'],
    });
    writeFileSync(path.join(dir, 'ca.pem'), ca.cert.toString());
    writeFileSync(path.join(dir, 'leaf.pem'), leaf.toString());
    const out = execFileSync('openssl', ['verify', '-CAfile', path.join(dir, 'ca.pem'), '-purpose', 'sslclient', path.join(dir, 'leaf.pem')], { encoding: 'utf8' });
    expect(out).toMatch(/OK/);
    const text = execFileSync('openssl', ['x509', '-in', path.join(dir, 'leaf.pem'), '-noout', '-text'], { encoding: 'utf8' });
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature, Key Encipherment, Key Agreement/);
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
    expect(text).toMatch(/TLS Web Server Authentication, TLS Web Client Authentication/);
    expect(text).toMatch(/URI:spiffe:\/\/example.org\/ns\/x/);
    expect(text).toMatch(/Subject: C ?= ?US, O ?= ?SPIRE/);

    expect(leaf.checkIssued(ca.cert)).toBe(true);
    expect(leaf.verify(ca.cert.publicKey)).toBe(true);
    expect(leaf.ca).toBe(false);
    expect(ca.cert.ca).toBe(true);
    expect(Math.abs(notAfter(leaf) - (now + 600_000))).toBeLessThan(1000);

    const li = inspect(leaf);
    expect(li).toMatchObject({ isCa: false, keyUsage: [0, 2, 4], keyUsageCritical: true, uris: ['spiffe://example.org/ns/x'], sanCount: 1 });
    expect(li.extKeyUsage).toEqual([OID.serverAuth, OID.clientAuth]);
    expect(inspect(ca.cert)).toMatchObject({ isCa: true, keyUsage: [5, 6], uris: ['spiffe://example.org'] });
  });

  it('signs with P-384 and RSA issuers, and certifies RSA subject keys', () => {
    const ca = makeCa('P-384');
    const rsa = generateKey('rsa-2048');
    const leaf = createCertificate({
      subject: {}, publicKey: rsa.publicKey, issuer: ca.cert, signingKey: ca.key,
      notBefore: now, notAfter: now + 1000_000, isCa: false, keyUsage: [KU.digitalSignature], uris: ['spiffe://example.org/rsa'],
    });
    expect(leaf.verify(ca.cert.publicKey)).toBe(true);
    expect(inspect(leaf).sanCritical).toBe(true); // empty subject
    const rsaCa = createCertificate({
      subject: { O: 'RSA' }, publicKey: rsa.publicKey, signingKey: rsa.privateKey,
      notBefore: now, notAfter: now + 1000_000, isCa: true, keyUsage: [KU.keyCertSign],
    });
    expect(rsaCa.verify(rsa.publicKey)).toBe(true);
  });

  it('splits concatenated DER and PEM into certificates, in order', () => {
    const a = makeCa().cert;
    const b = makeCa().cert;
    expect(certificatesFromDer(toDer([a, b])).map((c) => c.fingerprint256)).toEqual([a.fingerprint256, b.fingerprint256]);
    // X509Certificate alone silently reads only the first of concatenated DER certificates
    expect(new X509Certificate(toDer([a, b])).fingerprint256).toBe(a.fingerprint256);
    const pem = `junk\n${toPem([a])}-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n${toPem([b])}`;
    expect(certificatesFromPem(pem).map((c) => c.fingerprint256)).toEqual([a.fingerprint256, b.fingerprint256]);
  });
});
