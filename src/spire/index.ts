/**
 * SPIFFE identities for the agent: where they come from (Workload API, files, development CA),
 * mTLS credentials for grpc-js, ES256 NSM tokens, and the peer identity of calls.
 * README.md in this directory shows how the pieces plug into the agent.
 */
import { Clock, realClock } from '../core/clock';
import { AgentError } from '../core/errors';
import type { Logger } from '../core/log';
import { DevX509Source } from './dev';
import { FederatedX509Source, type FederationSettings } from './federation';
import { FileX509Source } from './files';
import type { X509Source } from './source';
import type { X509Context } from './svid';
import { WorkloadX509Source } from './workload';

export type { X509Source, SourceKind } from './source';
export type { X509Svid, X509Context, Bundles } from './svid';
export { WorkloadApiClient, WorkloadX509Source, endpointTarget, ENDPOINT_ENV } from './workload';
export { FileX509Source } from './files';
export { FederatedX509Source, fetchSpiffeBundle, type FederationSettings, type FederationStatus } from './federation';
export { serveBundleEndpoint, type BundleEndpointServer } from './bundle-endpoint';
export { parseSpiffeBundle, serializeSpiffeBundle, type SpiffeBundle } from './jwks';
export { DevX509Source, isLoopbackHost } from './dev';
export { LocalCa } from './ca';
export { parseSpiffeId, isSpiffeId, idMatcher, trustDomainName } from './id';
export { PEER, SERVER_PEER, peerFromCall, peerFromCertificate, type PeerIdentity, type PeerSlot } from './peer';
export { trustedBundles, type MtlsOptions } from './mtls';
export { channelCredentials, type SpiffeChannel } from './channel';
export { listenMtls, type MtlsListener, type ListenMtlsOptions } from './listen';
export {
  SpiffeTokenSource,
  tokenMetadata,
  tokenCallCredentials,
  signEs256,
  verifyEs256,
  decodeJwt,
  TOKEN_HEADER,
  TOKEN_EXPIRES_HEADER,
} from './token';
export { verifyX509Svid, authorizeAny, authorizeId, authorizeOneOf, authorizeMemberOf, authorizeMatching, type Authorizer } from './verify';

/** agent.yaml `identity`, as parsed by src/agent/config (structurally IdentityConfig). */
export interface IdentitySettings {
  source: 'spiffe' | 'files' | 'dev';
  socket?: string;
  files?: { cert: string; key: string; bundle: string; federated?: Record<string, string> };
  dev: { caDir: string; trustDomain: string; allowNonLoopback: boolean };
  /** Other trust domains' bundle endpoints; the source is wrapped in a FederatedX509Source when any. */
  federation?: readonly FederationSettings[];
}

/** The X509Source for agent.yaml's `identity`. `name` makes the dev identity's ID. */
export function createX509Source(cfg: IdentitySettings, opts: { name: string; log?: Logger; clock?: Clock }): X509Source {
  const base = baseSource(cfg, opts);
  return cfg.federation?.length ? new FederatedX509Source(base, cfg.federation, opts) : base;
}

function baseSource(cfg: IdentitySettings, opts: { name: string; log?: Logger; clock?: Clock }): X509Source {
  switch (cfg.source) {
    case 'spiffe':
      return new WorkloadX509Source({ address: cfg.socket, log: opts.log });
    case 'files':
      if (!cfg.files) throw new AgentError('INVALID_ARGUMENT', 'identity.files is required with identity.source files');
      return new FileX509Source({ ...cfg.files, log: opts.log });
    case 'dev':
      return new DevX509Source({ ...cfg.dev, name: opts.name, log: opts.log, clock: opts.clock });
  }
}

/**
 * Waits for the first identity, at most `timeoutMs`. The rejection says why there is none (the
 * last problem the source reported: socket missing, PERMISSION_DENIED, bad files, ...), so
 * the daemon can refuse to start with a clear message. Does not close the source.
 */
export async function waitForIdentity(source: X509Source, timeoutMs: number, clock: Clock = realClock): Promise<X509Context> {
  let last: AgentError | undefined;
  const onProblem = (e: AgentError) => {
    last = e;
  };
  source.on('problem', onProblem);
  const ac = new AbortController();
  const stop = clock.after(timeoutMs, () => ac.abort());
  try {
    return await source.ready(ac.signal);
  } catch (err) {
    if (!ac.signal.aborted) throw err;
    const why = last ? `: ${last.message}` : '';
    throw new AgentError('UNAVAILABLE', `no SPIFFE identity (${source.kind}) after ${timeoutMs >= 10_000 ? Math.round(timeoutMs / 1000) : timeoutMs / 1000} s${why}`);
  } finally {
    stop();
    source.off('problem', onProblem);
  }
}
