import { describe, it, expect } from 'vitest';
import { idMatcher, isSpiffeId, parseSpiffeId, trustDomainName } from '../../../src/spire/id';
import { generateKey, LocalCa } from '../../../src/spire/ca';
import { makeSvid, pickSvid, svidFromDer } from '../../../src/spire/svid';
import { authorizeMatching, authorizeMemberOf, authorizeOneOf, verifyAndAuthorize, verifyX509Svid } from '../../../src/spire/verify';
import { createCertificate, KU, OID, toDer } from '../../../src/spire/x509';

describe('SPIFFE IDs', () => {
  it('accepts valid IDs and splits trust domain and path', () => {
    expect(parseSpiffeId('spiffe://example.org/ns/db/client')).toEqual({ id: 'spiffe://example.org/ns/db/client', trustDomain: 'example.org', path: '/ns/db/client' });
    expect(parseSpiffeId('spiffe://k8s.nsm').path).toBe('');
    expect(isSpiffeId('spiffe://a_b-c.d/A.b-c_d/x')).toBe(true);
  });

  it('rejects what SPIFFE-ID.md forbids', () => {
    for (const bad of [
      '', 'http://example.org/x', 'SPIFFE://example.org/x', 'spiffe://Example.org/x', 'spiffe:///x', 'spiffe://example.org/',
      'spiffe://example.org//x', 'spiffe://example.org/a/../b', 'spiffe://example.org/./b', 'spiffe://example.org/a%20b',
      'spiffe://user@example.org/x', 'spiffe://example.org:8080/x', 'spiffe://example.org/x?q=1', 'spiffe://example.org/x#f',
      `spiffe://example.org/${'a'.repeat(2100)}`,
    ]) {
      expect(isSpiffeId(bad), bad).toBe(false);
    }
    expect(() => parseSpiffeId('spiffe://example.org/a//b')).toThrow(/empty path segment/);
  });

  it('reads trust domain names spelled with or without the scheme', () => {
    expect(trustDomainName('spiffe://td2.example')).toBe('td2.example');
    expect(trustDomainName('td2.example')).toBe('td2.example');
    expect(() => trustDomainName('spiffe://td/x')).toThrow(/not a trust domain/);
  });

  it('matches policy patterns: exact, trust domain, path prefix, anyone', () => {
    const exact = idMatcher('spiffe://example.org/ns/db/client');
    expect(exact('spiffe://example.org/ns/db/client')).toBe(true);
    expect(exact('spiffe://example.org/ns/db/client2')).toBe(false);
    const td = idMatcher('spiffe://example.org/*');
    expect(td('spiffe://example.org/anything/at/all')).toBe(true);
    expect(td('spiffe://example.org.evil/x')).toBe(false);
    const prefix = idMatcher('spiffe://example.org/ns/db/*');
    expect(prefix('spiffe://example.org/ns/db/replica-1')).toBe(true);
    expect(prefix('spiffe://example.org/ns/db/a/b')).toBe(true);
    expect(prefix('spiffe://example.org/ns/db')).toBe(false);
    expect(prefix('spiffe://example.org/ns/dbx/a')).toBe(false);
    expect(idMatcher('*')('spiffe://x/y')).toBe(true);
    expect(() => idMatcher('spiffe://example.org/ns/*/db')).toThrow(/not a SPIFFE ID/);
    expect(() => idMatcher('example.org/*')).toThrow(/not a SPIFFE ID/);
  });
});

const now = Date.now();
const ca = LocalCa.create({ trustDomain: 'example.org' });
const ID = 'spiffe://example.org/w';

function leafWith(change: Partial<Parameters<typeof createCertificate>[0]>, issuer = ca) {
  const keys = generateKey();
  const cert = createCertificate({
    subject: { C: 'US', O: 'SPIRE' }, publicKey: keys.publicKey, issuer: issuer.cert, signingKey: issuer.key,
    notBefore: now - 10_000, notAfter: now + 600_000, isCa: false,
    keyUsage: [KU.digitalSignature, KU.keyEncipherment, KU.keyAgreement], extKeyUsage: [OID.serverAuth, OID.clientAuth], uris: [ID],
    ...change,
  });
  return { cert, key: keys.privateKey };
}

describe('SVID validation', () => {
  it('accepts SPIRE-profile SVIDs from DER and checks the announced ID', () => {
    const s = ca.issue(ID);
    const parsed = svidFromDer(ID, toDer(s.chain), s.key.export({ type: 'pkcs8', format: 'der' }), 'internal');
    expect(parsed).toMatchObject({ id: ID, trustDomain: 'example.org', hint: 'internal' });
    expect(() => svidFromDer('spiffe://example.org/other', toDer(s.chain), s.key.export({ type: 'pkcs8', format: 'der' }))).toThrow(/carries spiffe:\/\/example.org\/w/);
    expect(() => svidFromDer(ID, toDer(s.chain), Buffer.from('junk'))).toThrow(/PKCS#8/);
    expect(() => svidFromDer(ID, Buffer.alloc(0), Buffer.from('x'))).toThrow(/no certificates/);
  });

  it('refuses bad leaves, intermediates that are not CAs, and mismatched keys', () => {
    const cases: [Partial<Parameters<typeof createCertificate>[0]>, RegExp][] = [
      [{ isCa: true, keyUsage: [KU.digitalSignature, KU.keyCertSign] }, /is a CA/],
      [{ keyUsage: [KU.digitalSignature, KU.cRLSign] }, /cRLSign/],
      [{ keyUsage: [KU.keyEncipherment] }, /digitalSignature/],
      [{ uris: ['spiffe://example.org'] }, /trust domain ID/],
      [{ uris: ['https://example.org/x'] }, /not a SPIFFE ID/],
    ];
    for (const [change, msg] of cases) {
      const { cert, key } = leafWith(change);
      expect(() => makeSvid([cert], key)).toThrow(msg);
    }
    const { cert } = leafWith({});
    expect(() => makeSvid([cert], generateKey().privateKey)).toThrow(/does not match/);
    const notCa = leafWith({ uris: ['spiffe://example.org/x'] });
    const good = leafWith({});
    expect(() => makeSvid([good.cert, notCa.cert], good.key)).toThrow(/not a CA/);
    expect(() => makeSvid([], good.key)).toThrow(/empty/);
  });

  it('picks the default SVID or the one with a hint', () => {
    const a = ca.issue(ID, { hint: 'internal' });
    const b = ca.issue('spiffe://example.org/b', { hint: 'external' });
    const ctx = { svids: [a, b], bundles: new Map() };
    expect(pickSvid(ctx)?.id).toBe(ID);
    expect(pickSvid(ctx, 'external')?.id).toBe('spiffe://example.org/b');
    expect(pickSvid(ctx, 'none')).toBeUndefined();
  });
});

describe('peer verification', () => {
  const bundles = new Map([['example.org', ca.bundle()]]);

  it('verifies a leaf against its trust domain bundle, through intermediates', () => {
    expect(verifyX509Svid(ca.issue(ID).chain, bundles, now).id).toBe(ID);
    const inter = ca.intermediate();
    const deep = inter.intermediate();
    const s = deep.issue(ID);
    expect(s.chain).toHaveLength(3);
    const v = verifyX509Svid(s.chain, bundles, now);
    expect(v.chain).toHaveLength(4); // leaf, two intermediates, root
    // without the intermediates it does not chain
    expect(() => verifyX509Svid([s.chain[0]!], bundles, now)).toThrow(/does not chain/);
  });

  it('refuses expired or not yet valid certificates and unknown trust domains', () => {
    const s = ca.issue(ID, { ttlMs: 60_000 });
    expect(() => verifyX509Svid(s.chain, bundles, now + 120_000)).toThrow(/not valid now/);
    expect(() => verifyX509Svid(s.chain, bundles, now - 3600_000)).toThrow(/not valid now/);
    expect(() => verifyX509Svid(s.chain, new Map(), now)).toThrow(/no bundle for trust domain example.org/);
    expect(() => verifyX509Svid([], bundles, now)).toThrow(/no certificate/);
  });

  it('does not let a bundle entry of another trust domain vouch for an ID', () => {
    const other = LocalCa.create({ trustDomain: 'other.org' });
    const forged = leafWith({}, other);
    const both = new Map([['example.org', ca.bundle()], ['other.org', other.bundle()]]);
    expect(() => verifyX509Svid([forged.cert], both, now)).toThrow(/does not chain to the bundle of its trust domain example.org/);
  });

  it('runs the authorizer after verification', () => {
    const chain = ca.issue(ID).chain;
    expect(() => verifyAndAuthorize(chain, bundles, now, authorizeOneOf(['spiffe://example.org/x']))).toThrow(/not authorized/);
    expect(verifyAndAuthorize(chain, bundles, now, authorizeMemberOf('example.org')).id).toBe(ID);
    expect(verifyAndAuthorize(chain, bundles, now, authorizeMatching(['spiffe://example.org/*'])).id).toBe(ID);
    let code: string | undefined;
    try {
      verifyAndAuthorize(chain, bundles, now, authorizeMemberOf('other.org'));
    } catch (e) {
      code = (e as { code: string }).code;
    }
    expect(code).toBe('PERMISSION_DENIED');
  });
});
