/** peerFromCall on grpc-js auth contexts (the TLS side is covered by the integration tests). */
import { describe, it, expect } from 'vitest';
import { LocalCa } from '../../../src/spire/ca';
import { peerFromCall } from '../../../src/spire/peer';

describe('peerFromCall', () => {
  const ca = LocalCa.create({ trustDomain: 'example.org' });
  const svid = ca.issue('spiffe://example.org/ns/db/client');

  it('reads the SPIFFE ID, key and expiry of the TLS peer', () => {
    const p = peerFromCall({ getAuthContext: () => ({ transportSecurityType: 'ssl', sslPeerCertificate: { raw: svid.chain[0]!.raw } }) });
    expect(p).toMatchObject({ id: 'spiffe://example.org/ns/db/client', trustDomain: 'example.org', expiresAt: svid.expiresAt });
    expect(p?.publicKey.equals(svid.chain[0]!.publicKey)).toBe(true);
  });

  it('parses a certificate once: calls presenting the same one get the same identity, another one its own', () => {
    const call = (raw: Buffer) => ({ getAuthContext: () => ({ transportSecurityType: 'ssl', sslPeerCertificate: { raw: Buffer.from(raw) } }) });
    const a = peerFromCall(call(svid.chain[0]!.raw));
    const again = peerFromCall(call(svid.chain[0]!.raw)); // a new Buffer per call, as grpc-js gives
    expect(again).toBe(a);
    const other = ca.issue('spiffe://example.org/ns/db/other');
    const b = peerFromCall(call(other.chain[0]!.raw));
    expect(b?.id).toBe('spiffe://example.org/ns/db/other');
    expect(b).not.toBe(a);
    // a rotated SVID of the same ID is another certificate: its own key and expiry
    const rotated = ca.issue('spiffe://example.org/ns/db/client', { ttlMs: 7_200_000 });
    const r = peerFromCall(call(rotated.chain[0]!.raw));
    expect(r?.id).toBe(a?.id);
    expect(r?.publicKey.equals(rotated.chain[0]!.publicKey)).toBe(true);
    expect(r?.expiresAt).toBe(rotated.expiresAt);
  });

  it('is undefined without TLS, without a certificate, or for a certificate without one SPIFFE ID', () => {
    expect(peerFromCall({})).toBeUndefined();
    expect(peerFromCall({ getAuthContext: () => null })).toBeUndefined();
    expect(peerFromCall({ getAuthContext: () => ({}) })).toBeUndefined();
    expect(peerFromCall({ getAuthContext: () => ({ transportSecurityType: 'ssl', sslPeerCertificate: {} }) })).toBeUndefined();
    expect(peerFromCall({ getAuthContext: () => ({ transportSecurityType: 'ssl', sslPeerCertificate: { raw: ca.root.raw } }) })).toBeUndefined();
    expect(peerFromCall({ getAuthContext: () => ({ transportSecurityType: 'ssl', sslPeerCertificate: { raw: Buffer.from('junk') } }) })).toBeUndefined();
  });
});
