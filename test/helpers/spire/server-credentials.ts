/**
 * mTLS for servers bound with grpc-js's own bindAsync, for tests: the agent serves with
 * listenMtls (src/spire/listen.ts), which checks the full peer chain at the handshake. These
 * credentials exercise the other path a grpc-js server can take, and the tests use them as an
 * independent peer for the client side.
 *
 * Node has no verification hook for client certificates here, so stage 2 of the SPIFFE checks
 * (src/spire/mtls.ts) runs per call in a server interceptor (UNAUTHENTICATED or
 * PERMISSION_DENIED). It sees only the peer's leaf (grpc-js getAuthContext), so a peer whose
 * leaf is signed by an intermediate instead of directly by a root of its bundle is refused
 * with a message saying so. Connections are not re-made by themselves: recycleConnections
 * drains them on a timer.
 *
 * Uses grpc-js 1.14 internals (ServerCredentials watchers and interceptors, getAuthContext).
 */
import { X509Certificate } from 'node:crypto';
import type { SecureContextOptions } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { Clock, realClock } from '../../../src/core/clock';
import { AgentError } from '../../../src/core/errors';
import { RecentMap } from '../../../src/core/recent';
import { MtlsOptions, tlsMaterial, trustedBundles, watchSource } from '../../../src/spire/mtls';
import { PeerIdentity, peerFromCertificate } from '../../../src/spire/peer';
import type { X509Source } from '../../../src/spire/source';
import type { X509Svid } from '../../../src/spire/svid';
import { Authorizer, authorizeAny, verifyAndAuthorize } from '../../../src/spire/verify';

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
 * as `call.metadata`). Keyed by object identity, so nothing a caller sends can put an entry here.
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
    const m = tlsMaterial(this.source, this.opts.federatesWith);
    return m ? { cert: m.cert, key: m.key, ca: m.ca } : null;
  }

  override _getSecureContextOptions(): SecureContextOptions | null {
    return this.options();
  }

  override _addWatcher(watcher: (o: SecureContextOptions | null) => void): void {
    super._addWatcher(watcher);
    if (this.getWatcherCount() === 1) {
      this.unwatch = watchSource(this.source, () => {
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
  const unwatch = watchSource(source, onChange);
  onChange();
  return () => {
    unwatch();
    stopTimer();
  };
}

