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

  it('is undefined without TLS, without a certificate, or for a certificate without one SPIFFE ID', () => {
    expect(peerFromCall({})).toBeUndefined();
    expect(peerFromCall({ getAuthContext: () => null })).toBeUndefined();
    expect(peerFromCall({ getAuthContext: () => ({}) })).toBeUndefined();
    expect(peerFromCall({ getAuthContext: () => ({ transportSecurityType: 'ssl', sslPeerCertificate: {} }) })).toBeUndefined();
    expect(peerFromCall({ getAuthContext: () => ({ transportSecurityType: 'ssl', sslPeerCertificate: { raw: ca.root.raw } }) })).toBeUndefined();
    expect(peerFromCall({ getAuthContext: () => ({ transportSecurityType: 'ssl', sslPeerCertificate: { raw: Buffer.from('junk') } }) })).toBeUndefined();
  });
});
