/**
 * Mutual TLS with X.509-SVIDs for grpc-js (requires @grpc/grpc-js ≥ 1.14 for getAuthContext;
 * the certificate-provider API used here is grpc-js "experimental", so the version is pinned
 * to 1.14.x and the tests below pin the behaviour).
 *
 * Both sides present the source's CURRENT SVID on every new handshake: the credentials listen
 * to the X509Source and hand grpc-js new secure-context options when it changes, so rotation
 * needs no restart (open connections keep the certificate they started with, as in Go).
 *
 * Peer verification has two stages:
 * 1. OpenSSL checks the peer chain against the union of the trusted bundles (own trust domain
 *    plus the federated ones allowed by `federatesWith`): an untrusted CA fails the handshake.
 * 2. The SPIFFE checks of verify.ts bind the peer's ID to the bundle of ITS OWN trust domain
 *    (a td2 CA cannot vouch for a td1 ID), and check the SAN and leaf flags and the authorizer.
 *    - client side: in checkServerIdentity, with the verified chain; a failure fails the
 *      handshake (the call gets UNAVAILABLE);
 *    - server side: Node has no verification hook for client certificates, so a server
 *      interceptor checks every call before its handler runs (UNAUTHENTICATED or
 *      PERMISSION_DENIED). It sees only the peer's leaf (grpc-js getAuthContext), so a peer
 *      whose leaf is signed by an intermediate instead of directly by a root of its bundle is
 *      refused there with a message saying so (SPIRE's default, leaf signed by the trust
 *      domain's CA, is fine; an UpstreamAuthority with intermediates is not supported yet).
 */
import { X509Certificate } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import * as tls from 'node:tls';
import type { PeerCertificate, SecureContextOptions } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { Clock, realClock } from '../core/clock';
import { AgentError } from '../core/errors';
import { Logger, silentLogger } from '../core/log';
import type { TokenSource } from '../networkservice/updatetoken/token';
import { hostOf } from './dev';
import { trustDomainName } from './id';
import { PeerIdentity, peerFromCertificate } from './peer';
import type { X509Source } from './source';
import type { Bundles } from './svid';
import { tokenCallCredentials } from './token';
import { Authorizer, authorizeAny, verifyAndAuthorize } from './verify';
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

interface Material {
  /** PEM chain of the current SVID. */
  cert: string;
  /** PEM PKCS#8 key. */
  key: string;
  /** PEM of every trusted root (OpenSSL's pool; stage 2 re-binds per trust domain). */
  ca: string;
}

function material(source: X509Source, federatesWith?: readonly string[]): Material | undefined {
  let svid;
  try {
    svid = source.svid();
  } catch {
    return undefined;
  }
  const roots = [...trustedBundles(source, federatesWith).values()].flat();
  if (!roots.length) return undefined;
  return {
    cert: toPem(svid.chain),
    key: svid.key.export({ type: 'pkcs8', format: 'pem' }) as string,
    ca: toPem(roots),
  };
}

/** Subscribes `fn` to every change of the source (updates and revocations). */
function watch(source: X509Source, fn: () => void): () => void {
  const onUpdate = () => fn();
  const onProblem = () => fn();
  source.on('update', onUpdate);
  source.on('problem', onProblem);
  return () => {
    source.off('update', onUpdate);
    source.off('problem', onProblem);
  };
}

/**
 * A grpc-js CertificateProvider fed by an X509Source: identity = the current SVID, CA = the
 * trusted roots. A new listener gets the latest value on the next tick; `null` means "no
 * identity" (grpc-js then refuses new connections).
 */
export class SourceCertificateProvider implements grpc.experimental.CertificateProvider {
  private readonly caListeners = new Set<grpc.experimental.CaCertificateUpdateListener>();
  private readonly idListeners = new Set<grpc.experimental.IdentityCertificateUpdateListener>();
  private unwatch: (() => void) | undefined;

  constructor(
    private readonly source: X509Source,
    private readonly federatesWith?: readonly string[],
  ) {}

  private current(): Material | undefined {
    return material(this.source, this.federatesWith);
  }

  private publish(): void {
    const m = this.current();
    for (const l of this.caListeners) l(m ? { caCertificate: Buffer.from(m.ca) } : null);
    for (const l of this.idListeners) l(m ? { certificate: Buffer.from(m.cert), privateKey: Buffer.from(m.key) } : null);
  }

  private sync(): void {
    const any = this.caListeners.size + this.idListeners.size > 0;
    if (any && !this.unwatch) this.unwatch = watch(this.source, () => this.publish());
    if (!any && this.unwatch) {
      this.unwatch();
      this.unwatch = undefined;
    }
  }

  addCaCertificateListener(l: grpc.experimental.CaCertificateUpdateListener): void {
    this.caListeners.add(l);
    this.sync();
    process.nextTick(() => {
      if (!this.caListeners.has(l)) return;
      const m = this.current();
      l(m ? { caCertificate: Buffer.from(m.ca) } : null);
    });
  }
  removeCaCertificateListener(l: grpc.experimental.CaCertificateUpdateListener): void {
    this.caListeners.delete(l);
    this.sync();
  }
  addIdentityCertificateListener(l: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.idListeners.add(l);
    this.sync();
    process.nextTick(() => {
      if (!this.idListeners.has(l)) return;
      const m = this.current();
      l(m ? { certificate: Buffer.from(m.cert), privateKey: Buffer.from(m.key) } : null);
    });
  }
  removeIdentityCertificateListener(l: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.idListeners.delete(l);
    this.sync();
  }
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

export interface SpiffeChannel {
  /** For the grpc-js Client constructor (with `options`). */
  credentials: grpc.ChannelCredentials;
  /** The server last authenticated by a handshake made with these credentials. */
  peer(): PeerIdentity | undefined;
  /**
   * Channel options to pass along: the TLS server name is set to a fixed non-IP value, since
   * SPIFFE verification ignores host names and Node warns about IP addresses as SNI.
   */
  options: grpc.ChannelOptions;
}

/**
 * Client credentials presenting the current SVID and accepting only a server whose SVID
 * verifies against the bundle of its own trust domain and passes `authorize`.
 *
 * `tokens`: also send an NSM token on every call (nsm-client-token headers) whose audience is
 * the authenticated server. Use one SpiffeChannel per target: `peer()` is the last server these
 * credentials authenticated.
 */
export function channelCredentials(source: X509Source, opts: MtlsOptions & { tokens?: TokenSource } = {}): SpiffeChannel {
  const authorize = opts.authorize ?? authorizeAny();
  const clock = opts.clock ?? realClock;
  let last: PeerIdentity | undefined;
  const provider = new SourceCertificateProvider(source, opts.federatesWith);
  const checkServerIdentity = (_host: string, cert: PeerCertificate): Error | undefined => {
    try {
      const verified = verifyAndAuthorize(chainOf(cert), trustedBundles(source, opts.federatesWith), clock.now(), authorize);
      const leaf = verified.chain[0] as X509Certificate;
      last = peerFromCertificate(leaf);
      return undefined;
    } catch (err) {
      return AgentError.from(err, 'UNAUTHENTICATED');
    }
  };
  let credentials: grpc.ChannelCredentials = grpc.experimental.createCertificateProviderChannelCredentials(provider, provider, {
    checkServerIdentity,
    rejectUnauthorized: true, // never false: then checkServerIdentity's verdict would be ignored
  });
  if (opts.tokens) credentials = credentials.compose(tokenCallCredentials(opts.tokens, () => last, clock));
  return {
    credentials,
    peer: () => last,
    options: { 'grpc.ssl_target_name_override': 'spiffe' },
  };
}

/** Server credentials options: `listen` is checked against the source (see dev.ts). */
export interface ServerMtlsOptions extends MtlsOptions {
  /** The address the credentials will be bound to; the dev identity refuses non-loopback. */
  listen?: string;
}

/**
 * grpc-js server credentials: the current SVID, client certificates required and verified
 * (stage 1 at the handshake, stage 2 per call in an interceptor; see the module comment).
 * Before the source has an identity the server drops new connections.
 */
export function serverCredentials(source: X509Source, opts: ServerMtlsOptions = {}): grpc.ServerCredentials {
  if (opts.listen !== undefined) source.checkListener(opts.listen);
  return new SpiffeServerCredentials(source, opts);
}

class SpiffeServerCredentials extends grpc.ServerCredentials {
  private unwatch: (() => void) | undefined;
  private readonly authorize: Authorizer;
  private readonly clock: Clock;
  /** Leaf fingerprint → verified peer; cleared when the source changes. */
  private verified = new Map<string, PeerIdentity>();

  constructor(
    private readonly source: X509Source,
    private readonly opts: ServerMtlsOptions,
  ) {
    super({ requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' });
    this.authorize = opts.authorize ?? authorizeAny();
    this.clock = opts.clock ?? realClock;
  }

  private options(): SecureContextOptions | null {
    const m = material(this.source, this.opts.federatesWith);
    return m ? { cert: m.cert, key: m.key, ca: m.ca } : null;
  }

  override _getSecureContextOptions(): SecureContextOptions | null {
    return this.options();
  }

  override _addWatcher(watcher: (o: SecureContextOptions | null) => void): void {
    super._addWatcher(watcher);
    if (this.getWatcherCount() === 1) {
      this.unwatch = watch(this.source, () => {
        this.verified.clear();
        this.updateSecureContextOptions(this.options());
      });
    }
  }

  override _removeWatcher(watcher: (o: SecureContextOptions | null) => void): void {
    super._removeWatcher(watcher);
    if (this.getWatcherCount() === 0) {
      this.unwatch?.();
      this.unwatch = undefined;
    }
  }

  override _equals(other: grpc.ServerCredentials): boolean {
    return (other as unknown) === this;
  }

  override _getInterceptors(): grpc.ServerInterceptor[] {
    return [(_method, call) => this.intercept(call)];
  }

  /** The per-call check; returns the refusal as an AgentError. */
  check(raw: Buffer | undefined): PeerIdentity | AgentError {
    if (!raw) return new AgentError('UNAUTHENTICATED', 'the peer presented no client certificate');
    try {
      const leaf = new X509Certificate(raw);
      const hit = this.verified.get(leaf.fingerprint256);
      if (hit && hit.expiresAt > this.clock.now()) return hit;
      const bundles = trustedBundles(this.source, this.opts.federatesWith);
      let verified;
      try {
        verified = verifyAndAuthorize([leaf], bundles, this.clock.now(), this.authorize);
      } catch (err) {
        const e = AgentError.from(err, 'UNAUTHENTICATED');
        if (/does not chain/.test(e.message)) {
          return new AgentError(e.code, `${e.message} (only certificates signed directly by a root of the bundle are accepted by the server)`);
        }
        return e;
      }
      const peer = peerFromCertificate(verified.chain[0] as X509Certificate);
      if (this.verified.size > 1000) this.verified.clear();
      this.verified.set(leaf.fingerprint256, peer);
      return peer;
    } catch (err) {
      return AgentError.from(err, 'UNAUTHENTICATED');
    }
  }

  private intercept(call: grpc.ServerInterceptingCallInterface): grpc.ServerInterceptingCall {
    return new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        next({
          onReceiveMetadata: (md, mdNext) => {
            const ac = call.getAuthContext() as { sslPeerCertificate?: { raw?: Buffer } } | null;
            const result = this.check(ac?.sslPeerCertificate?.raw);
            if (result instanceof AgentError) {
              call.sendStatus({ code: result.grpcStatus, details: result.message, metadata: new grpc.Metadata() });
              return;
            }
            mdNext(md);
          },
        });
      },
    });
  }
}

export interface MtlsListener {
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** Stops accepting, closes the injected sessions' listener and releases the source watch. */
  close(): Promise<void>;
}

export interface ListenMtlsOptions extends MtlsOptions {
  log?: Logger;
}

/**
 * An alternative to serverCredentials that authorizes at the handshake with the FULL peer
 * chain (intermediates included): a node:tls server presents the current SVID (swapped with
 * setSecureContext on rotation), verifies each client like the client side does, and only
 * then hands the TLS socket to the grpc-js server (Server.createConnectionInjector, grpc-js
 * ≥ 1.11). Refused peers are disconnected before any RPC. Handlers see the peer exactly as
 * with serverCredentials (peerFromCall). `address` is `host:port` (`[v6]:port`).
 */
export async function listenMtls(server: grpc.Server, address: string, source: X509Source, opts: ListenMtlsOptions = {}): Promise<MtlsListener> {
  source.checkListener(address);
  const authorize = opts.authorize ?? authorizeAny();
  const clock = opts.clock ?? realClock;
  const log = opts.log ?? silentLogger;
  const host = hostOf(address);
  const port = Number(address.slice(address.lastIndexOf(':') + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535 || !address.includes(':')) {
    throw new AgentError('INVALID_ARGUMENT', `${address} is not host:port`);
  }
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const initial = material(source, opts.federatesWith);
  const tlsServer = tls.createServer({
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: ['h2'],
    minVersion: 'TLSv1.2',
    ...(initial ?? {}),
  });
  let current = initial;
  const unwatch = watch(source, () => {
    current = material(source, opts.federatesWith);
    if (current) tlsServer.setSecureContext({ cert: current.cert, key: current.key, ca: current.ca });
  });
  const sockets = new Set<Socket>();
  tlsServer.on('connection', (socket: Socket) => {
    if (!current) return void socket.destroy(); // no identity yet: nothing to present
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  tlsServer.on('tlsClientError', (err, socket) => {
    log.debug('mTLS handshake failed', { remote: socket.remoteAddress, error: err.message });
    socket.destroy();
  });
  tlsServer.on('secureConnection', (socket: tls.TLSSocket) => {
    socket.on('error', () => {});
    try {
      verifyAndAuthorize(chainOf(socket.getPeerCertificate(true)), trustedBundles(source, opts.federatesWith), clock.now(), authorize);
    } catch (err) {
      log.warn('mTLS peer refused', { remote: socket.remoteAddress, error: (err as Error).message });
      socket.destroy();
      return;
    }
    injector.injectConnection(socket);
  });
  await new Promise<void>((resolve, reject) => {
    tlsServer.once('error', reject);
    tlsServer.listen(port, host, () => {
      tlsServer.off('error', reject);
      resolve();
    });
  });
  const bound = (tlsServer.address() as AddressInfo).port;
  return {
    port: bound,
    close: async () => {
      unwatch();
      const closed = new Promise<void>((resolve) => tlsServer.close(() => resolve()));
      injector.destroy();
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
