/**
 * Mutual TLS with X.509-SVIDs for grpc-js. Uses grpc-js 1.14 seams that are internal or
 * "experimental" (ServerCredentials watchers and interceptors, the client SecureConnector,
 * Server.createConnectionInjector, getAuthContext); the version is pinned to 1.14.x and the
 * integration tests pin the behaviour.
 *
 * Both sides present the source's CURRENT SVID on every new handshake (rotation needs no
 * restart). An open connection keeps the certificates of its handshake, and NSM tokens sent on
 * it must verify with them, so: the client signs a connection's tokens with the SVID that
 * connection presented, and servers re-make connections when their own SVID rotates and
 * before a peer's certificate expires (listenMtls per connection; recycleConnections on a
 * timer for servers bound with serverCredentials).
 *
 * Peer verification has two stages:
 * 1. OpenSSL checks the peer chain against the union of the trusted bundles (own trust domain
 *    plus the federated ones allowed by `federatesWith`): an untrusted CA fails the handshake.
 * 2. The SPIFFE checks of verify.ts bind the peer's ID to the bundle of ITS OWN trust domain
 *    (a td2 CA cannot vouch for a td1 ID), and check the SAN and leaf flags and the authorizer.
 *    - client side: in checkServerIdentity, with the verified chain; a failure fails the
 *      handshake (the call gets UNAVAILABLE);
 *    - listenMtls: right after the handshake, with the full chain; refused peers are
 *      disconnected before any call;
 *    - serverCredentials: Node has no verification hook for client certificates, so a server
 *      interceptor checks every call before its handler runs (UNAUTHENTICATED or
 *      PERMISSION_DENIED). It sees only the peer's leaf (grpc-js getAuthContext), so a peer
 *      whose leaf is signed by an intermediate instead of directly by a root of its bundle is
 *      refused with a message saying so (SPIRE's default, leaf signed by the trust domain's CA,
 *      is fine; with an UpstreamAuthority use listenMtls).
 */
import { X509Certificate } from 'node:crypto';
import { isIP, type AddressInfo, type Socket } from 'node:net';
import * as tls from 'node:tls';
import type { PeerCertificate, SecureContextOptions } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { Clock, realClock } from '../core/clock';
import { AgentError } from '../core/errors';
import { Logger, silentLogger } from '../core/log';
import { RecentMap } from '../core/recent';
import type { TokenSource } from '../core/token';
import { hostOf } from './dev';
import { trustDomainName } from './id';
import { PeerIdentity, peerFromCertificate } from './peer';
import type { X509Source } from './source';
import type { Bundles, X509Svid } from './svid';
import { tokenCallCredentials } from './token';
import { Authorizer, authorizeAny, verifyAndAuthorize } from './verify';
import { notAfter, toPem } from './x509';

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
  svid: X509Svid;
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
    svid,
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
  /** For the grpc-js Client constructor. */
  credentials: grpc.ChannelCredentials;
  /** The server authenticated by the latest handshake made with these credentials. */
  peer(): PeerIdentity | undefined;
  /**
   * The SVID this agent presented in that handshake. Tokens for calls on that connection must
   * be signed with its key (the server verifies them with the certificate it saw), which is
   * what `tokens` does; use it with SpiffeTokenSource.signWith when sending tokens yourself.
   */
  presented(): X509Svid | undefined;
  /** Channel options to pass along (none needed today; kept for forward compatibility). */
  options: grpc.ChannelOptions;
}

/** What one handshake used and saw. */
interface Handshake {
  presented: X509Svid;
  peer: PeerIdentity;
}

/**
 * grpc-js channel credentials doing the TLS handshake themselves (grpc-js's SecureConnector
 * seam, @grpc/grpc-js 1.14), so that each connection's presented SVID and authenticated peer
 * are known exactly: the SVID is read from the source at each handshake (rotation needs no
 * new channel), and the per-call tokens of a connection are signed with the SVID that
 * connection presented. grpc-js makes one connector per subchannel and asks it for the call
 * credentials of every call after the subchannel is connected.
 */
class SpiffeChannelCredentials extends grpc.ChannelCredentials {
  last: Handshake | undefined;

  constructor(
    readonly source: X509Source,
    readonly opts: MtlsOptions & { tokens?: TokenSource },
  ) {
    super();
  }

  _isSecure(): boolean {
    return true;
  }

  _equals(other: grpc.ChannelCredentials): boolean {
    return (other as unknown) === this;
  }

  _createSecureConnector(target: unknown, options: grpc.ChannelOptions, callCredentials?: grpc.CallCredentials): grpc.experimental.SecureConnector {
    return new SpiffeConnector(this, targetHost(target, options), callCredentials);
  }
}

/** The TLS server name: grpc.ssl_target_name_override, else the target's host unless it is an IP. */
function targetHost(target: unknown, options: grpc.ChannelOptions): string | undefined {
  const override = options['grpc.ssl_target_name_override'];
  if (typeof override === 'string') return override;
  const path = (target as { path?: unknown } | undefined)?.path;
  if (typeof path !== 'string') return undefined;
  const hp = grpc.experimental.splitHostPort(path);
  const host = hp?.host ?? path;
  return host && !isIP(host) && !host.startsWith('/') ? host : undefined;
}

class SpiffeConnector implements grpc.experimental.SecureConnector {
  private handshake: Handshake | undefined;
  private readonly callCredentials: grpc.CallCredentials;

  constructor(
    private readonly parent: SpiffeChannelCredentials,
    private readonly servername: string | undefined,
    outer: grpc.CallCredentials | undefined,
  ) {
    const { tokens, clock } = parent.opts;
    const own = tokens
      ? tokenCallCredentials(tokens, () => this.handshake?.peer, clock ?? realClock, () => this.handshake?.presented)
      : grpc.credentials.createEmpty();
    this.callCredentials = outer ? outer.compose(own) : own;
  }

  connect(socket: Socket): Promise<grpc.experimental.SecureConnectResult> {
    const { source, opts } = this.parent;
    const m = material(source, opts.federatesWith);
    if (!m) return Promise.reject(new AgentError('UNAVAILABLE', 'no SPIFFE identity to present'));
    const authorize = opts.authorize ?? authorizeAny();
    const clock = opts.clock ?? realClock;
    let peer: PeerIdentity | undefined;
    return new Promise((resolve, reject) => {
      const tlsSocket = tls.connect(
        {
          socket,
          secureContext: tls.createSecureContext({ cert: m.cert, key: m.key, ca: m.ca, minVersion: 'TLSv1.2' }),
          ...(this.servername ? { servername: this.servername } : {}),
          ALPNProtocols: ['h2'],
          rejectUnauthorized: true, // never false: checkServerIdentity's verdict would be ignored
          // Called after OpenSSL verified the chain against the trusted roots; the SPIFFE checks.
          checkServerIdentity: (_host, cert) => {
            try {
              const verified = verifyAndAuthorize(chainOf(cert), trustedBundles(source, opts.federatesWith), clock.now(), authorize);
              peer = peerFromCertificate(verified.chain[0] as X509Certificate);
              return undefined;
            } catch (err) {
              return AgentError.from(err, 'UNAUTHENTICATED');
            }
          },
        },
        () => {
          tlsSocket.off('close', onClose);
          tlsSocket.off('error', onError);
          if (!tlsSocket.authorized || !peer) {
            reject(tlsSocket.authorizationError ?? new AgentError('UNAUTHENTICATED', 'server not authenticated'));
            return;
          }
          this.handshake = { presented: m.svid, peer };
          this.parent.last = this.handshake;
          resolve({ socket: tlsSocket, secure: true });
        },
      );
      const onClose = () => reject(new Error('socket closed during the TLS handshake'));
      const onError = (err: Error) => reject(err);
      tlsSocket.once('close', onClose);
      tlsSocket.once('error', onError);
    });
  }

  async waitForReady(): Promise<void> {
    await this.parent.source.ready();
  }

  getCallCredentials(): grpc.CallCredentials {
    return this.callCredentials;
  }

  destroy(): void {}
}

/**
 * Client credentials presenting the current SVID and accepting only a server whose SVID
 * verifies against the bundle of its own trust domain and passes `authorize`.
 *
 * `tokens`: also send an NSM token on every call (nsm-client-token headers) whose audience is
 * the authenticated server, signed with the SVID presented on that connection (a connection
 * outlives rotations until the server recycles it, see recycleConnections).
 * Use one SpiffeChannel per target: `peer()` is the server of the latest handshake.
 */
export function channelCredentials(source: X509Source, opts: MtlsOptions & { tokens?: TokenSource } = {}): SpiffeChannel {
  const creds = new SpiffeChannelCredentials(source, opts);
  return {
    credentials: creds,
    peer: () => creds.last?.peer,
    presented: () => creds.last?.presented,
    options: {},
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

/**
 * The peer the server check accepted, by the call's Metadata object (the one the handler gets
 * as `call.metadata`): the handler's Ctx takes it from here instead of asking grpc-js for the
 * peer certificate again (TLSSocket.getPeerCertificate builds it anew, ~0.1-0.2 ms, per ask).
 * Keyed by object identity, so nothing a caller sends can put an entry here.
 */
const checkedPeers = new WeakMap<grpc.Metadata, PeerIdentity>();

/** The mTLS peer the server credentials' per-call check accepted for the call with this metadata. */
export function checkedPeerOf(md: grpc.Metadata): PeerIdentity | undefined {
  return checkedPeers.get(md);
}

class SpiffeServerCredentials extends grpc.ServerCredentials {
  private unwatch: (() => void) | undefined;
  private readonly authorize: Authorizer;
  /** Leaf certificate (DER, base64) → verified peer; cleared when the source changes. */
  private verified = new RecentMap<string, PeerIdentity>(1000);

  constructor(
    private readonly source: X509Source,
    private readonly opts: ServerMtlsOptions,
  ) {
    super({ requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' });
    this.authorize = opts.authorize ?? authorizeAny();
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
    // Keyed by the DER itself: a hit (every call after a connection's first) parses nothing.
    const key = raw.toString('base64');
    const hit = this.verified.get(key);
    if (hit) return hit;
    try {
      const leaf = new X509Certificate(raw);
      const bundles = trustedBundles(this.source, this.opts.federatesWith);
      let verified;
      try {
        // No validity-time check: OpenSSL made it at the handshake, and a connection may outlive
        // its certificates as in Go; recycleConnections bounds how long.
        verified = verifyAndAuthorize([leaf], bundles, undefined, this.authorize);
      } catch (err) {
        const e = AgentError.from(err, 'UNAUTHENTICATED');
        if (/does not chain/.test(e.message)) {
          return new AgentError(e.code, `${e.message} (only certificates signed directly by a root of the bundle are accepted by the server)`);
        }
        return e;
      }
      const peer = peerFromCertificate(verified.chain[0] as X509Certificate);
      this.verified.set(key, peer);
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
            checkedPeers.set(md, result);
            mdNext(md);
          },
        });
      },
    });
  }
}

/**
 * Handlers find their caller through grpc-js's getAuthContext() (peerFromCall), which asks the
 * connection's socket for the peer certificate on every call, and Node builds that object anew
 * each time (its fields and three fingerprints: ~0.3 ms of the event loop per call on a 2-core
 * host, bench/remote.mjs). The peer cannot change on a connection once verified: renegotiation
 * is refused (here, before the socket is handed on, and by node:http2 on every session's socket;
 * TLS 1.3 has none), so the first answer is kept and given to every call. The detailed form
 * (with the issuer chain) is still built on each ask; nothing asks for it per call.
 */
function keepPeerCertificate(socket: tls.TLSSocket): void {
  socket.disableRenegotiation();
  const build = tls.TLSSocket.prototype.getPeerCertificate;
  const kept = build.call(socket, false);
  socket.getPeerCertificate = ((detailed?: boolean) => (detailed ? build.call(socket, true) : kept)) as tls.TLSSocket['getPeerCertificate'];
}

export interface RecycleOptions {
  /** How long calls in flight may go on after a drain (default 10 s). */
  graceMs?: number;
  /** Longest connection age (default 10 min); shorter with short-lived SVIDs. */
  maxAgeMs?: number;
  clock?: Clock;
}

/**
 * Keeps a server's mTLS connections from outliving the certificates they were opened with. A
 * TLS connection keeps the SVIDs of its handshake, and the NSM tokens sent on it must verify
 * with those (this server's own segment tokens are signed with its current SVID), so:
 * - when this agent's SVID rotates, `drain` (GOAWAY; calls in flight get graceMs) makes clients
 *   reconnect and see the new certificate;
 * - at least every sixth of the SVID lifetime (at most maxAgeMs), so that a client whose own
 *   SVID rotated reconnects well before the certificate its tokens on this connection are
 *   signed with expires (clients rotate at half-life, so that one still has about half its
 *   lifetime, less up to a second as token expiry is in whole seconds). With SVIDs of a few
 *   seconds this is racy; listenMtls recycles each connection exactly instead.
 *
 * `drain` is e.g. `(grace) => server.drain(boundAddress, grace)` with the actual bound port
 * (grpc-js cannot drain "port 0"). listenMtls does this by itself. Returns a stop function.
 */
export function recycleConnections(drain: (graceMs: number) => void, source: X509Source, opts: RecycleOptions = {}): () => void {
  const clock = opts.clock ?? realClock;
  const graceMs = opts.graceMs ?? 10_000;
  const maxAgeMs = opts.maxAgeMs ?? 600_000;
  let fingerprint: string | undefined;
  let period = maxAgeMs;
  let stopTimer = () => {};
  const arm = () => {
    stopTimer();
    stopTimer = clock.after(period, () => {
      drain(graceMs);
      arm();
    });
  };
  const onChange = () => {
    let svid: X509Svid;
    try {
      svid = source.svid();
    } catch {
      return; // no identity: nothing is being presented
    }
    const fp = svid.chain[0]?.fingerprint256;
    if (fp === fingerprint) return;
    const first = fingerprint === undefined;
    fingerprint = fp;
    period = Math.max(100, Math.min(maxAgeMs, (svid.expiresAt - clock.now()) / 6));
    if (!first) drain(graceMs);
    arm();
  };
  const unwatch = watch(source, onChange);
  onChange();
  return () => {
    unwatch();
    stopTimer();
  };
}

/**
 * listenMtls never drains a connection for its peer's expiry sooner than this after it was
 * made: a drain at once refuses the calls in flight, and the peer may have no newer
 * certificate yet.
 */
const MIN_CONNECTION_AGE_MS = 200;

export interface MtlsListener {
  /** The bound port (useful with port 0). */
  readonly port: number;
  /** Stops accepting, closes the injected sessions' listener and releases the source watch. */
  close(): Promise<void>;
}

export interface ListenMtlsOptions extends MtlsOptions {
  log?: Logger;
  /**
   * Connection recycling, on by default: a connection is drained (GOAWAY, calls in flight get
   * graceMs, default 10 s) when this agent's SVID rotates and just before the peer
   * certificate it was opened with expires. `false` turns it off.
   */
  recycle?: { graceMs?: number } | false;
}

/**
 * An alternative to serverCredentials that authorizes at the handshake with the FULL peer
 * chain (intermediates included): a node:tls server presents the current SVID (swapped with
 * setSecureContext on rotation), verifies each client like the client side does, and only
 * then hands the TLS socket to the grpc-js server (Server.createConnectionInjector, grpc-js
 * ≥ 1.11). Refused peers are disconnected before any RPC. Handlers see the peer exactly as
 * with serverCredentials (peerFromCall). Each connection is recycled when this agent's SVID
 * rotates and before its peer's certificate expires (exactly, per connection; compare
 * recycleConnections for bindAsync servers), unless `recycle: false`. `address` is
 * `host:port` (`[v6]:port`).
 */
export async function listenMtls(server: grpc.Server, address: string, source: X509Source, opts: ListenMtlsOptions = {}): Promise<MtlsListener> {
  source.checkListener(address);
  const authorize = opts.authorize ?? authorizeAny();
  const clock = opts.clock ?? realClock;
  const log = opts.log ?? silentLogger;
  const graceMs = (opts.recycle !== false && opts.recycle?.graceMs) || 10_000;
  const host = hostOf(address);
  const port = Number(address.slice(address.lastIndexOf(':') + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535 || !address.includes(':')) {
    throw new AgentError('INVALID_ARGUMENT', `${address} is not host:port`);
  }

  // One grpc-js connection injector per connection, so that each can be drained on its own
  // (an injector's drain() ends, after the grace time, every session it has by then).
  interface Conn {
    socket: tls.TLSSocket;
    injector: grpc.ConnectionInjector;
    stop: () => void;
    retired: boolean;
  }
  const conns = new Set<Conn>();
  /** GOAWAY: calls in flight get graceMs, new calls make a new connection. */
  const retire = (c: Conn) => {
    if (c.retired) return;
    c.retired = true;
    c.stop();
    c.injector.drain(graceMs);
  };
  const forget = (c: Conn) => {
    c.stop();
    c.injector.destroy();
    conns.delete(c);
  };

  const initial = material(source, opts.federatesWith);
  const tlsServer = tls.createServer({
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: ['h2'],
    minVersion: 'TLSv1.2',
    ...(initial ? { cert: initial.cert, key: initial.key, ca: initial.ca } : {}),
  });
  let current = initial;
  let presented = initial?.svid.chain[0]?.fingerprint256;
  const unwatch = watch(source, () => {
    current = material(source, opts.federatesWith);
    if (!current) return;
    tlsServer.setSecureContext({ cert: current.cert, key: current.key, ca: current.ca });
    const fp = current.svid.chain[0]?.fingerprint256;
    // Our SVID rotated: this server's tokens are now signed with the new key, so clients must
    // see the new certificate; unless turned off, every connection is re-made.
    if (fp !== presented && opts.recycle !== false) for (const c of conns) retire(c);
    presented = fp;
  });

  const pending = new Set<Socket>();
  tlsServer.on('connection', (socket: Socket) => {
    if (!current) return void socket.destroy(); // no identity yet: nothing to present
    pending.add(socket);
    socket.once('close', () => pending.delete(socket));
  });
  tlsServer.on('tlsClientError', (err, socket) => {
    log.debug('mTLS handshake failed', { remote: socket.remoteAddress, error: err.message });
    socket.destroy();
  });
  tlsServer.on('secureConnection', (socket: tls.TLSSocket) => {
    socket.on('error', () => {});
    let peerExpires: number;
    try {
      const verified = verifyAndAuthorize(chainOf(socket.getPeerCertificate(true)), trustedBundles(source, opts.federatesWith), clock.now(), authorize);
      peerExpires = notAfter(verified.chain[0] as X509Certificate);
    } catch (err) {
      log.warn('mTLS peer refused', { remote: socket.remoteAddress, error: (err as Error).message });
      socket.destroy();
      return;
    }
    keepPeerCertificate(socket);
    const c: Conn = { socket, injector: server.createConnectionInjector(grpc.ServerCredentials.createInsecure()), stop: () => {}, retired: false };
    conns.add(c);
    socket.once('close', () => forget(c));
    // The peer's tokens on this connection are signed with the certificate it presented and
    // expire with it (in whole seconds); re-make the connection just before (and not at once,
    // see MIN_CONNECTION_AGE_MS).
    if (opts.recycle !== false) {
      const at = Math.floor(peerExpires / 1000) * 1000 - 250;
      c.stop = clock.after(Math.max(MIN_CONNECTION_AGE_MS, at - clock.now()), () => retire(c));
    }
    c.injector.injectConnection(socket);
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
      for (const c of [...conns]) {
        forget(c);
        c.socket.destroy();
      }
      for (const sock of pending) sock.destroy();
      await closed;
    },
  };
}
