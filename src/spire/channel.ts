/**
 * Client-side mTLS for grpc-js: channel credentials that do the TLS handshake themselves
 * through grpc-js's SecureConnector seam (internal in @grpc/grpc-js 1.14, which is pinned to
 * 1.14.x; the integration tests pin the behaviour). The SPIFFE checks run in
 * checkServerIdentity (see mtls.ts), and each connection's tokens are signed with the SVID
 * that connection presented.
 */
import { X509Certificate } from 'node:crypto';
import { isIP, type Socket } from 'node:net';
import type * as tls from 'node:tls';
import type * as grpc from '@grpc/grpc-js';
import { grpcJs } from '../api/grpc-js';
import { realClock } from '../core/clock';
import { AgentError } from '../core/errors';
import type { TokenSource } from '../core/token';
import { chainOf, MtlsOptions, tlsMaterial, trustedBundles } from './mtls';
import { PeerIdentity, peerFromCertificate } from './peer';
import type { X509Source } from './source';
import type { X509Svid } from './svid';
import { tokenCallCredentials } from './token';
import { authorizeAny, verifyAndAuthorize } from './verify';

/** node:tls, loaded by the first mTLS connection: an agent that dials no peer does not load it. */
const tlsModule = () => require('node:tls') as typeof tls;

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
interface SpiffeChannelCredentials extends grpc.ChannelCredentials {
  last: Handshake | undefined;
  readonly source: X509Source;
  readonly opts: MtlsOptions & { tokens?: TokenSource };
}

type CredentialsClass = new (source: X509Source, opts: MtlsOptions & { tokens?: TokenSource }) => SpiffeChannelCredentials;
let credentialsClass: CredentialsClass | undefined;

/**
 * The class, defined on first use: it extends a grpc-js class, and an agent that makes no
 * mTLS channel (an idle one, a CLI) does not load grpc-js.
 */
function spiffeChannelCredentials(): CredentialsClass {
  credentialsClass ??= class extends grpcJs.ChannelCredentials implements SpiffeChannelCredentials {
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
  };
  return credentialsClass;
}

/** The TLS server name: grpc.ssl_target_name_override, else the target's host unless it is an IP. */
function targetHost(target: unknown, options: grpc.ChannelOptions): string | undefined {
  const override = options['grpc.ssl_target_name_override'];
  if (typeof override === 'string') return override;
  const path = (target as { path?: unknown } | undefined)?.path;
  if (typeof path !== 'string') return undefined;
  const hp = grpcJs.experimental.splitHostPort(path);
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
      : grpcJs.credentials.createEmpty();
    this.callCredentials = outer ? outer.compose(own) : own;
  }

  connect(socket: Socket): Promise<grpc.experimental.SecureConnectResult> {
    const { source, opts } = this.parent;
    const m = tlsMaterial(source, opts.federatesWith);
    if (!m) return Promise.reject(new AgentError('UNAVAILABLE', 'no SPIFFE identity to present'));
    const authorize = opts.authorize ?? authorizeAny();
    const clock = opts.clock ?? realClock;
    let peer: PeerIdentity | undefined;
    let identityError: AgentError | undefined;
    return new Promise((resolve, reject) => {
      const tlsSocket = tlsModule().connect(
        {
          socket,
          secureContext: tlsModule().createSecureContext({ cert: m.cert, key: m.key, ca: m.ca, minVersion: 'TLSv1.2' }),
          ...(this.servername ? { servername: this.servername } : {}),
          ALPNProtocols: ['h2'],
          // The callback below refuses and destroys every connection that is not authorized
          // (chain or SPIFFE checks), before anything is sent on it; false only so that the
          // certificate of a server whose chain OpenSSL refused can still be read, to name it.
          rejectUnauthorized: false,
          // Called after OpenSSL verified the chain against the trusted roots; the SPIFFE checks.
          checkServerIdentity: (_host, cert) => {
            try {
              const verified = verifyAndAuthorize(chainOf(cert), trustedBundles(source, opts.federatesWith), clock.now(), authorize);
              peer = peerFromCertificate(verified.chain[0] as X509Certificate);
              return undefined;
            } catch (err) {
              identityError = AgentError.from(err, 'UNAUTHENTICATED');
              return identityError;
            }
          },
        },
        () => {
          tlsSocket.off('close', onClose);
          tlsSocket.off('error', onError);
          if (!tlsSocket.authorized || !peer) {
            const why = String(tlsSocket.authorizationError ?? 'server not authenticated');
            const err = identityError ?? untrustedServer(tlsSocket, why) ?? new AgentError('UNAUTHENTICATED', `server not authenticated: ${why}`);
            tlsSocket.destroy();
            reject(err);
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
 * A server whose chain OpenSSL refused (e.g. its CA is in no bundle this agent has): the error
 * names the server's SPIFFE ID and trust domain, read from the certificate it sent.
 */
function untrustedServer(socket: tls.TLSSocket, why: string): AgentError | undefined {
  let san: string | undefined;
  try {
    san = socket.getPeerCertificate(false)?.subjectaltname;
  } catch {
    return undefined;
  }
  const id = /URI:(spiffe:\/\/([^/,\s]+)[^,\s]*)/.exec(san ?? '');
  if (!id) return undefined;
  return new AgentError(
    'UNAUTHENTICATED',
    `server ${id[1]} of trust domain ${id[2]} is not trusted: its chain does not verify against the bundles this agent has (its own trust domain's and the federated ones): ${why}`,
  );
}

/**
 * Client credentials presenting the current SVID and accepting only a server whose SVID
 * verifies against the bundle of its own trust domain and passes `authorize`.
 *
 * `tokens`: also send an NSM token on every call (nsm-client-token headers) whose audience is
 * the authenticated server, signed with the SVID presented on that connection (a connection
 * outlives rotations until the server re-makes it, see listen.ts).
 * Use one SpiffeChannel per target: `peer()` is the server of the latest handshake.
 */
export function channelCredentials(source: X509Source, opts: MtlsOptions & { tokens?: TokenSource } = {}): SpiffeChannel {
  const creds = new (spiffeChannelCredentials())(source, opts);
  return {
    credentials: creds,
    peer: () => creds.last?.peer,
    presented: () => creds.last?.presented,
    options: {},
  };
}
