/**
 * What both mTLS sides share: the material they present and trust (the source's current SVID
 * and the trusted bundles), source change notifications, and the verified peer chain.
 *
 * Both sides present the source's CURRENT SVID on every new handshake, so rotation needs no
 * restart. An open connection keeps the certificates of its handshake, and NSM tokens sent on
 * it must verify with them: the client (channel.ts) signs a connection's tokens with the SVID
 * that connection presented, and the server (listen.ts) re-makes each connection when its own
 * SVID rotates and before the peer's certificate expires.
 *
 * Peer verification has two stages, on both sides:
 * 1. OpenSSL checks the peer chain against the union of the trusted bundles (own trust domain
 *    plus the federated ones allowed by `federatesWith`): an untrusted CA fails the handshake.
 * 2. The SPIFFE checks of verify.ts bind the peer's ID to the bundle of ITS OWN trust domain
 *    (a td2 CA cannot vouch for a td1 ID, as go-spiffe's x509svid.Verify), and check the SAN,
 *    the leaf flags and the authorizer, with the full verified chain: the client in
 *    checkServerIdentity (a failure fails the handshake, the call gets UNAVAILABLE), the
 *    server right after the handshake (refused peers are disconnected before any call).
 */
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import type { Clock } from '../core/clock';
import { trustDomainName } from './id';
import type { X509Source } from './source';
import type { Bundles, X509Svid } from './svid';
import type { Authorizer } from './verify';
import { toPem } from './x509';

export interface MtlsOptions {
  /** Who may connect / be connected to, after verification; default: any verified peer. */
  authorize?: Authorizer;
  /**
   * Foreign trust domains whose peers are accepted (their bundles must come from the
   * source). Default: every trust domain the source has a bundle for (the Workload API only
   * sends bundles of trust domains the registration entry federates with).
   */
  federatesWith?: string[];
  clock?: Clock;
}

/** The bundles peers are verified against: own trust domain plus the allowed federated ones. */
export function trustedBundles(source: X509Source, federatesWith?: readonly string[]): Bundles {
  const ctx = source.current();
  if (!ctx) return new Map();
  if (!federatesWith) return ctx.bundles;
  let own: string | undefined;
  try {
    own = source.svid().trustDomain;
  } catch {
    own = undefined;
  }
  const allowed = new Set(federatesWith.map(trustDomainName));
  return new Map([...ctx.bundles].filter(([td]) => td === own || allowed.has(td)));
}

export interface TlsMaterial {
  svid: X509Svid;
  /** PEM chain of the current SVID. */
  cert: string;
  /** PEM PKCS#8 key. */
  key: string;
  /** PEM of every trusted root (OpenSSL's pool; stage 2 re-binds per trust domain). */
  ca: string;
}

/** What to present and trust now; undefined while the source has no SVID or no bundle. */
export function tlsMaterial(source: X509Source, federatesWith?: readonly string[]): TlsMaterial | undefined {
  let svid;
  try {
    svid = source.svid();
  } catch {
    return undefined;
  }
  const roots = [...trustedBundles(source, federatesWith).values()].flat();
  if (!roots.length) return undefined;
  return {
    svid,
    cert: toPem(svid.chain),
    key: svid.key.export({ type: 'pkcs8', format: 'pem' }) as string,
    ca: toPem(roots),
  };
}

/** Subscribes `fn` to every change of the source (updates and revocations); returns the unsubscribe. */
export function watchSource(source: X509Source, fn: () => void): () => void {
  const onUpdate = () => fn();
  const onProblem = () => fn();
  source.on('update', onUpdate);
  source.on('problem', onProblem);
  return () => {
    source.off('update', onUpdate);
    source.off('problem', onProblem);
  };
}

/** The chain OpenSSL verified, from a detailed PeerCertificate (leaf first, root last). */
export function chainOf(cert: PeerCertificate): X509Certificate[] {
  const out: X509Certificate[] = [];
  const seen = new Set<string>();
  let c: (PeerCertificate & { issuerCertificate?: PeerCertificate }) | undefined = cert;
  while (c?.raw && !seen.has(c.fingerprint256) && out.length < 10) {
    seen.add(c.fingerprint256);
    out.push(new X509Certificate(c.raw));
    c = c.issuerCertificate;
  }
  return out;
}
