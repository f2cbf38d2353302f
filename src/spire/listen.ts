/**
 * Server-side mTLS for grpc-js: a node:tls server that verifies each client with the full
 * peer chain (see mtls.ts) and only then hands the socket to the grpc-js server through
 * Server.createConnectionInjector (grpc-js >= 1.11; the version is pinned to 1.14.x).
 * Handlers find their caller with peerFromCall (peer.ts).
 */
import { X509Certificate } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import type * as tls from 'node:tls';
import type * as grpc from '@grpc/grpc-js';
import { grpcJs } from '../api/grpc-js';
import { realClock } from '../core/clock';
import { AgentError } from '../core/errors';
import { Logger, silentLogger } from '../core/log';
import { hostOf } from './dev';
import { chainOf, MtlsOptions, tlsMaterial, trustedBundles, watchSource } from './mtls';
import type { X509Source } from './source';
import { authorizeAny, verifyAndAuthorize } from './verify';
import { notAfter } from './x509';

/** node:tls, loaded by the first TLS listener: an agent without one does not load it. */
const tlsModule = () => require('node:tls') as typeof tls;

/**
 * Handlers find their caller through grpc-js's getAuthContext() (peerFromCall), which asks the
 * connection's socket for the peer certificate on every call, and Node builds that object
 * anew each time, a cost on the event loop of every call. The peer cannot change on a
 * connection once verified: renegotiation is refused (here, before the socket is handed on,
 * and by node:http2 on every session's socket; TLS 1.3 has none), so the first answer is kept
 * and given to every call. The detailed form (with the issuer chain) is still built on each
 * ask; nothing asks for it per call.
 */
function keepPeerCertificate(socket: tls.TLSSocket): void {
  socket.disableRenegotiation();
  const build = tlsModule().TLSSocket.prototype.getPeerCertificate;
  const kept = build.call(socket, false);
  socket.getPeerCertificate = ((detailed?: boolean) => (detailed ? build.call(socket, true) : kept)) as tls.TLSSocket['getPeerCertificate'];
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
 * Serves `server` over mTLS on `address` (`host:port`, `[v6]:port`), authorizing each client
 * at the handshake with the FULL peer chain (intermediates included): a node:tls server
 * presents the current SVID (swapped with setSecureContext on rotation), verifies each client
 * like the client side does, and only then hands the TLS socket to the grpc-js server.
 * Refused peers are disconnected before any RPC. Each connection is re-made (GOAWAY) when this
 * agent's SVID rotates and just before its peer's certificate expires, unless
 * `recycle: false`. Throws FAILED_PRECONDITION for identity: dev on a non-loopback address.
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

  const initial = tlsMaterial(source, opts.federatesWith);
  const tlsServer = tlsModule().createServer({
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: ['h2'],
    minVersion: 'TLSv1.2',
    ...(initial ? { cert: initial.cert, key: initial.key, ca: initial.ca } : {}),
  });
  let current = initial;
  let presented = initial?.svid.chain[0]?.fingerprint256;
  const unwatch = watchSource(source, () => {
    current = tlsMaterial(source, opts.federatesWith);
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
    const c: Conn = { socket, injector: server.createConnectionInjector(grpcJs.ServerCredentials.createInsecure()), stop: () => {}, retired: false };
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
