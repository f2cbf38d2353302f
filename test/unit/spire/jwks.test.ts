import { describe, it, expect } from 'vitest';
import { LocalCa } from '../../../src/spire/ca';
import { parseSpiffeBundle, sameAuthorities, serializeSpiffeBundle } from '../../../src/spire/jwks';

const caB = LocalCa.create({ trustDomain: 'domain-b.org' });
const caB2 = LocalCa.create({ trustDomain: 'domain-b.org' });
const caC = LocalCa.create({ trustDomain: 'domain-c.org' });

const codeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return { code: (err as { code?: string }).code, message: (err as Error).message };
  }
  return undefined;
};

describe('SPIFFE bundle documents (JWK set)', () => {
  it('serializes X.509 authorities as x509-svid keys without kid, and parses them back', () => {
    const text = serializeSpiffeBundle({ x509Authorities: [caB.cert, caB2.cert], sequence: 42, refreshHintS: 60 });
    const doc = JSON.parse(text);
    expect(doc.spiffe_sequence).toBe(42);
    expect(doc.spiffe_refresh_hint).toBe(60);
    expect(doc.keys).toHaveLength(2);
    for (const k of doc.keys) {
      expect(k.use).toBe('x509-svid');
      expect(k.kid).toBeUndefined();
      expect(k.kty).toBe('EC');
      expect(k.crv).toBe('P-256');
      expect(typeof k.x).toBe('string');
      expect(k.x5c).toHaveLength(1);
    }
    expect(doc.keys[0].x5c[0]).toBe(caB.cert.raw.toString('base64'));
    const back = parseSpiffeBundle(text, 'test', 'domain-b.org');
    expect(back.sequence).toBe(42);
    expect(back.refreshHintS).toBe(60);
    expect(back.x509Authorities.map((c) => c.fingerprint256)).toEqual([caB.cert.fingerprint256, caB2.cert.fingerprint256]);
    expect(sameAuthorities(back.x509Authorities, [caB2.cert, caB.cert])).toBe(true);
    expect(sameAuthorities(back.x509Authorities, [caB.cert])).toBe(false);
  });

  it('ignores keys of other uses and unknown members; no hint or sequence is absent, not 0', () => {
    const doc = {
      keys: [
        { use: 'jwt-svid', kid: 'k1', kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA' },
        { use: 'wit-svid', kty: 'OKP' },
        JSON.parse(serializeSpiffeBundle({ x509Authorities: [caB.cert] })).keys[0],
      ],
      other: true,
    };
    const b = parseSpiffeBundle(JSON.stringify(doc), 'test');
    expect(b.x509Authorities).toHaveLength(1);
    expect(b.sequence).toBeUndefined();
    expect(b.refreshHintS).toBeUndefined();
  });

  it('an empty keys array is a bundle with no authorities (every key revoked)', () => {
    expect(parseSpiffeBundle('{"keys":[]}', 'test', 'domain-b.org').x509Authorities).toEqual([]);
  });

  it('refuses malformed documents with BUNDLE_INVALID naming the source', () => {
    const key = JSON.parse(serializeSpiffeBundle({ x509Authorities: [caB.cert] })).keys[0];
    const leaf = caB.issue('spiffe://domain-b.org/host').chain[0]!;
    const cases: [string, RegExp][] = [
      ['{"keys": [', /malformed JSON/],
      ['[]', /not a JSON object/],
      ['{"kes": []}', /no "keys" array/],
      ['{"keys": [1]}', /keys\[0\] is not an object/],
      [JSON.stringify({ keys: [{ use: 'x509-svid', kty: 'EC' }] }), /keys\[0\] \(x509-svid\) needs one certificate in x5c/],
      [JSON.stringify({ keys: [{ use: 'x509-svid', x5c: ['bm90IGEgY2VydA=='] }] }), /keys\[0\]\.x5c\[0\] is not a DER certificate/],
      [JSON.stringify({ keys: [{ use: 'x509-svid', x5c: [leaf.raw.toString('base64')] }] }), /is not a CA certificate/],
      [JSON.stringify({ keys: [{ ...key, x: JSON.parse(serializeSpiffeBundle({ x509Authorities: [caB2.cert] })).keys[0].x }] }), /keys\[0\]\.x does not match/],
      [JSON.stringify({ keys: [key], spiffe_sequence: -1 }), /spiffe_sequence must be a non-negative integer/],
      [JSON.stringify({ keys: [key], spiffe_refresh_hint: '60' }), /spiffe_refresh_hint must be a non-negative integer/],
    ];
    for (const [text, why] of cases) {
      const e = codeOf(() => parseSpiffeBundle(text, 'https://b.example/bundle'));
      expect(e?.code, text).toBe('BUNDLE_INVALID');
      expect(e?.message).toContain('https://b.example/bundle: not a SPIFFE bundle');
      expect(e?.message).toMatch(why);
    }
  });

  it('refuses the bundle of another trust domain with BUNDLE_WRONG_TRUST_DOMAIN naming both', () => {
    const text = serializeSpiffeBundle({ x509Authorities: [caC.cert] });
    const e = codeOf(() => parseSpiffeBundle(text, 'trust domain domain-b.org: bundle endpoint https://x', 'domain-b.org'));
    expect(e?.code).toBe('BUNDLE_WRONG_TRUST_DOMAIN');
    expect(e?.message).toContain('a bundle of trust domain domain-c.org, not of domain-b.org');
    // without an expected trust domain it parses
    expect(parseSpiffeBundle(text, 'file').x509Authorities).toHaveLength(1);
  });
});
