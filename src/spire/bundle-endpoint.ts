/**
 * A SPIFFE bundle endpoint (SPIFFE Federation, profile `https_spiffe`) serving this agent's own
 * trust domain bundle, for agents without SPIRE (whose server would serve it otherwise): GET
 * on any path answers the SPIFFE bundle document (jwks.ts) of the identity source's bundle for
 * the agent's trust domain, over HTTPS presenting the agent's current X.509-SVID. Clients are
 * not asked for a certificate (the federation profile forbids it).
 *
 * `spiffe_sequence` starts at the start time in seconds and goes up by one on every change of
 * the served authorities, so it keeps growing across restarts of an agent whose clock does.
 */
import type { X509Certificate } from 'node:crypto';
import type * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { Clock, realClock } from '../core/clock';
import { AgentError } from '../core/errors';
import { Logger, silentLogger } from '../core/log';
import { hostOf } from './dev';
import { sameAuthorities, serializeSpiffeBundle } from './jwks';
import { watchSource } from './mtls';
import type { X509Source } from './source';
import { toPem } from './x509';

/** node:https, loaded when the bundle endpoint is served. */
const httpsModule = () => require('node:https') as typeof https;

export interface BundleEndpointOptions {
  /** `spiffe_refresh_hint` of the served bundle, seconds (default 300). */
  refreshHintS?: number;
  log?: Logger;
  clock?: Clock;
}

export interface BundleEndpointServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Serves the own trust domain's bundle on `address` (`host:port`, `[v6]:port`). */
export async function serveBundleEndpoint(source: X509Source, address: string, opts: BundleEndpointOptions = {}): Promise<BundleEndpointServer> {
  source.checkListener(address);
  const log = opts.log ?? silentLogger;
  const host = hostOf(address);
  const port = Number(address.slice(address.lastIndexOf(':') + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535 || !address.includes(':')) {
    throw new AgentError('INVALID_ARGUMENT', `identity.bundleEndpoint.listen: ${address} is not host:port`);
  }
  const refreshHintS = opts.refreshHintS ?? 300;
  let sequence = Math.floor((opts.clock ?? realClock).now() / 1000);
  let served: { authorities: readonly X509Certificate[]; body: string } | undefined;

  /** The document for the source's current bundle; a new sequence number when it changed. */
  const document = (): string | undefined => {
    let td: string;
    try {
      td = source.svid().trustDomain;
    } catch {
      return undefined;
    }
    const authorities = source.bundle(td);
    if (!authorities?.length) return undefined;
    if (served && sameAuthorities(served.authorities, authorities)) return served.body;
    if (served) sequence++;
    served = { authorities, body: serializeSpiffeBundle({ x509Authorities: [...authorities], sequence, refreshHintS }) };
    return served.body;
  };
  const credentials = () => {
    const svid = source.svid();
    return { cert: toPem(svid.chain), key: svid.key.export({ type: 'pkcs8', format: 'pem' }) as string };
  };

  const server = httpsModule().createServer({ ...credentials(), minVersion: 'TLSv1.2', requestCert: false }, (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    const body = document();
    if (body === undefined) {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('no bundle yet\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  server.on('tlsClientError', (err, socket) => {
    log.debug('bundle endpoint: TLS handshake failed', { remote: socket.remoteAddress, error: err.message });
    socket.destroy();
  });
  const unwatch = watchSource(source, () => {
    try {
      server.setSecureContext({ ...credentials(), minVersion: 'TLSv1.2' });
    } catch {
      // no SVID now (revoked): keep presenting the last one until a new one comes
    }
    document();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  log.info('bundle endpoint serving the trust domain bundle', { listen: `${host}:${bound}`, refreshHintS });
  return {
    port: bound,
    close: async () => {
      unwatch();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
