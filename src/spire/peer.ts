/**
 * The authenticated peer of a call, and the Ctx keys that carry it to chain elements.
 *
 * Contract for the gRPC glue (src/agent/grpc/call-ctx.ts and the connect/dial client):
 * - server side: for a call that arrived over mTLS (listenMtls in listen.ts, which has
 *   already verified the peer), put `peerFromCall(call)` under PEER. Calls on the local unix
 *   socket carry no PEER: elements treat them as local callers.
 * - client side: the authorize client puts an empty PeerSlot under SERVER_PEER before it calls
 *   on; the glue that makes the gRPC call fills `slot.peer` with the server it reached
 *   (`peerFromCall(clientCall)` after the call, or `SpiffeChannel.peer()` from channel.ts).
 *   In-process hops leave it empty.
 */
import { KeyObject, X509Certificate } from 'node:crypto';
import { Key } from '../core/ctx';
import { RecentMap } from '../core/recent';
import { parseWorkloadId } from './id';
import { spiffeIdOf } from './svid';
import { notAfter } from './x509';

export interface PeerIdentity {
  /** The peer's SPIFFE ID. */
  id: string;
  trustDomain: string;
  /** The peer's leaf certificate. */
  certificate: X509Certificate;
  /** Its public key: what the peer's NSM tokens must verify with. */
  publicKey: KeyObject;
  /** The certificate's NotAfter, epoch ms (caps the lifetime of tokens sent to it). */
  expiresAt: number;
}

/** Server side: the caller authenticated by mTLS. Absent for local (unix socket) callers. */
export const PEER = new Key<PeerIdentity>('spiffe.peer');

/** Client side: filled by the gRPC glue with the server reached; see the module comment. */
export interface PeerSlot {
  peer?: PeerIdentity;
}
export const SERVER_PEER = new Key<PeerSlot>('spiffe.server-peer');

/**
 * The identity in a leaf certificate. Does not verify anything: use it only on certificates a
 * TLS handshake with the SPIFFE checks of mtls.ts has already accepted.
 */
export function peerFromCertificate(cert: X509Certificate): PeerIdentity {
  const id = spiffeIdOf(cert);
  return { id, trustDomain: parseWorkloadId(id).trustDomain, certificate: cert, publicKey: cert.publicKey, expiresAt: notAfter(cert) };
}

/** What grpc-js (≥ 1.14) returns from getAuthContext(); not exported from its index. */
export interface CallAuthContext {
  transportSecurityType?: string;
  sslPeerCertificate?: { raw?: Buffer };
}

/**
 * The peer of a grpc-js call (server or client side), from `call.getAuthContext()` (grpc-js
 * ≥ 1.14): undefined without TLS or without a valid peer certificate carrying one SPIFFE ID.
 */
export function peerFromCall(call: { getAuthContext?: () => CallAuthContext | null }): PeerIdentity | undefined {
  const ac = call.getAuthContext?.();
  const raw = ac?.transportSecurityType === 'ssl' ? ac.sslPeerCertificate?.raw : undefined;
  if (!raw) return undefined;
  const key = raw.toString('base64');
  const known = recentPeers.get(key);
  if (known) return known;
  let peer: PeerIdentity;
  try {
    peer = peerFromCertificate(new X509Certificate(raw));
  } catch {
    return undefined;
  }
  recentPeers.set(key, peer);
  return peer;
}

/**
 * The identities of the certificates peers presented lately, by the certificate's DER (base64):
 * every call on a connection presents the same one, so it is parsed (X509Certificate, its
 * SPIFFE ID and public key) once, not on every call. The identity depends on
 * those bytes only; TLS has verified them on each connection before any call is seen here.
 */
const recentPeers = new RecentMap<string, PeerIdentity>(256);
