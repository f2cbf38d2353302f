import { describe, it, expect, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as der from '../../../src/spire/der';
import { LocalCa } from '../../../src/spire/ca';
import { audienceOf, checkExpiry, decodeJwt, signEs256, SpiffeTokenSource, tokenMetadata, verifyEs256 } from '../../../src/spire/token';
import { StaticSource, contextOf } from '../../helpers/spire/static-source';

const dir = mkdtempSync(path.join(tmpdir(), 'nsm-token-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ca = LocalCa.create({ trustDomain: 'example.org' });
const ME = 'spiffe://example.org/nsm/agent/a';
const PEER = 'spiffe://example.org/nsm/agent/b';

describe('NSM tokens', () => {
  it('have upstream spiffejwt shape: {alg,typ} header, sub, aud array, exp in whole seconds', () => {
    const svid = ca.issue(ME, { ttlMs: 3600_000 });
    const tokens = new SpiffeTokenSource(new StaticSource(contextOf(svid, ca)), 600_000);
    const now = Date.now();
    const t = tokens.generate(now, PEER);
    const [h, c] = t.token.split('.');
    expect(Buffer.from(h!, 'base64url').toString()).toBe('{"alg":"ES256","typ":"JWT"}');
    expect(Buffer.from(c!, 'base64url').toString()).toBe(`{"sub":"${ME}","aud":["${PEER}"],"exp":${Math.floor((now + 600_000) / 1000)}}`);
    expect(t.expires).toBe(now + 600_000);
    const jwt = verifyEs256(t.token, svid.chain[0]!.publicKey);
    expect(jwt.claims.sub).toBe(ME);
    expect(audienceOf(jwt.claims)).toEqual([PEER]);
  });

  it('has a signature openssl verifies (JWS r||s converted to DER)', () => {
    const svid = ca.issue(ME);
    const token = signEs256({ sub: ME, exp: 2_000_000_000 }, svid.key);
    const [h, c, s] = token.split('.') as [string, string, string];
    const sig = Buffer.from(s, 'base64url');
    expect(sig).toHaveLength(64);
    const derSig = der.seq(der.uint(sig.subarray(0, 32)), der.uint(sig.subarray(32)));
    writeFileSync(path.join(dir, 'sig.der'), derSig);
    writeFileSync(path.join(dir, 'data'), `${h}.${c}`);
    writeFileSync(path.join(dir, 'pub.pem'), svid.chain[0]!.publicKey.export({ type: 'spki', format: 'pem' }));
    const out = execFileSync('openssl', ['dgst', '-sha256', '-verify', path.join(dir, 'pub.pem'), '-signature', path.join(dir, 'sig.der'), path.join(dir, 'data')], { encoding: 'utf8' });
    expect(out).toMatch(/Verified OK/);
  });

  it('are signed once per claims within a second: the same claims give the same token, other claims or SVIDs a new one', () => {
    const svid = ca.issue(ME, { ttlMs: 3600_000 });
    const src = new StaticSource(contextOf(svid, ca));
    const tokens = new SpiffeTokenSource(src, 600_000);
    const now = Math.floor(Date.now() / 1000) * 1000; // the start of a second
    const t1 = tokens.generate(now, PEER);
    const t2 = tokens.generate(now + 999, PEER);
    expect(t2.token).toBe(t1.token); // exp is the same whole second
    expect(t2.expires).toBe(now + 999 + 600_000); // the expiry asked for is still exact
    const later = tokens.generate(now + 1000, PEER);
    expect(later.token).not.toBe(t1.token);
    expect(decodeJwt(later.token).claims.exp).toBe(decodeJwt(t1.token).claims.exp! + 1);
    const other = tokens.generate(now, 'spiffe://example.org/nsm/agent/c');
    expect(other.token).not.toBe(t1.token);
    expect(audienceOf(decodeJwt(other.token).claims)).toEqual(['spiffe://example.org/nsm/agent/c']);
    expect(tokens.generate(now).token).not.toBe(t1.token); // no audience
    // signed with the SVID asked for: another SVID (a rotation) never gets a token of the old one
    const rotated = ca.issue(ME, { ttlMs: 3600_000 });
    const t3 = tokens.signWith(rotated, now, PEER);
    expect(t3.token).not.toBe(t1.token);
    expect(verifyEs256(t3.token, rotated.chain[0]!.publicKey).claims.sub).toBe(ME);
    for (const t of [t1, later, other]) expect(verifyEs256(t.token, svid.chain[0]!.publicKey).claims.sub).toBe(ME);
  });

  it('verify a token once per key: the same token again is the same (frozen) result; another key or a forged one still fails', () => {
    const svid = ca.issue(ME, { ttlMs: 3600_000 });
    const other = ca.issue(PEER, { ttlMs: 3600_000 });
    const token = signEs256({ sub: ME, aud: [PEER], exp: 2_000_000_000 }, svid.key);
    const pub = svid.chain[0]!.publicKey;
    const a = verifyEs256(token, pub);
    expect(verifyEs256(token, pub)).toBe(a);
    expect(Object.isFrozen(a.claims)).toBe(true);
    expect(() => verifyEs256(token, other.chain[0]!.publicKey)).toThrow(/not signed by the expected key/);
    const [h, c] = token.split('.');
    const forged = `${h}.${c}.${signEs256({ sub: ME, exp: 1 }, other.key).split('.')[2]}`;
    expect(() => verifyEs256(forged, pub)).toThrow(/not signed by the expected key/);
    expect(() => verifyEs256(forged, pub)).toThrow(/not signed by the expected key/); // failures are not kept
  });

  it('expire at the earliest of max lifetime, own SVID and peer certificate', () => {
    const now = Date.now();
    const svid = ca.issue(ME, { ttlMs: 120_000, now });
    const tokens = new SpiffeTokenSource(new StaticSource(contextOf(svid, ca)), 600_000);
    expect(tokens.generate(now, PEER).expires).toBe(svid.expiresAt);
    expect(tokens.generate(now, PEER, { expiresAt: now + 30_000 }).expires).toBe(now + 30_000);
    const long = new SpiffeTokenSource(new StaticSource(contextOf(ca.issue(ME, { ttlMs: 3600_000 }), ca)), 60_000);
    expect(long.generate(now).expires).toBe(now + 60_000);
  });

  it('leave aud out when the audience is unknown or not a SPIFFE ID; kid only on request', () => {
    const src = new StaticSource(contextOf(ca.issue(ME), ca));
    expect(decodeJwt(new SpiffeTokenSource(src, 60_000).generate(Date.now()).token).claims.aud).toBeUndefined();
    expect(decodeJwt(new SpiffeTokenSource(src, 60_000).generate(Date.now(), 'nsc-1').token).claims.aud).toBeUndefined();
    const withKid = decodeJwt(new SpiffeTokenSource(src, 60_000, { kid: true }).generate(Date.now()).token);
    expect(withKid.header.kid).toMatch(/^[0-9a-f]{64}$/);
  });

  it('refuse to sign with a non-P-256 SVID key (wrong key type) and without an SVID', () => {
    const rsa = ca.issue(ME, { keyType: 'rsa-2048' });
    expect(() => new SpiffeTokenSource(new StaticSource(contextOf(rsa, ca)), 60_000).generate(Date.now())).toThrow(/ES256: the SVID key of .* is rsa/);
    const p384 = ca.issue(ME, { keyType: 'ec-p384' });
    expect(() => new SpiffeTokenSource(new StaticSource(contextOf(p384, ca)), 60_000).generate(Date.now())).toThrow(/secp384r1/);
    expect(() => new SpiffeTokenSource(new StaticSource(), 60_000).generate(Date.now())).toThrow(/no SPIFFE identity/);
  });

  it('verification refuses other keys, tampering, alg none and malformed tokens; expiry is checked', () => {
    const a = ca.issue(ME);
    const b = ca.issue(PEER);
    const token = signEs256({ sub: ME, aud: [PEER], exp: Math.floor(Date.now() / 1000) + 60 }, a.key);
    expect(() => verifyEs256(token, b.chain[0]!.publicKey)).toThrow(/not signed by the expected key/);
    const [h, , s] = token.split('.');
    const tampered = `${h}.${Buffer.from(JSON.stringify({ sub: PEER, exp: 9e9 })).toString('base64url')}.${s}`;
    expect(() => verifyEs256(tampered, a.chain[0]!.publicKey)).toThrow(/not signed/);
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"sub":"x"}').toString('base64url')}.`;
    expect(() => verifyEs256(none, a.chain[0]!.publicKey)).toThrow(/alg is none/);
    for (const bad of ['', 'a.b', 'a.b.c.d', '!!.x.y', `${Buffer.from('[1]').toString('base64url')}.e30.`]) {
      expect(() => decodeJwt(bad), bad).toThrow();
    }
    expect(() => checkExpiry({ sub: ME, exp: 100 }, Date.now())).toThrow(/expired at 1970/);
    expect(() => checkExpiry({ sub: ME }, Date.now())).toThrow(/no exp/);
    expect(() => checkExpiry({ exp: Math.floor(Date.now() / 1000) + 10 }, Date.now())).not.toThrow();
    expect(audienceOf({ aud: 'single' })).toEqual(['single']);
  });

  it('travel as nsm-client-token and nsm-client-token-expires (RFC 3339 with nanoseconds)', () => {
    const md = tokenMetadata({ token: 'x.y.z', expires: Date.UTC(2030, 0, 2, 3, 4, 5, 678) });
    expect(md.get('nsm-client-token')).toEqual(['x.y.z']);
    expect(md.get('nsm-client-token-expires')).toEqual(['2030-01-02T03:04:05.678Z']);
  });
});
