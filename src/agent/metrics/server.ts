/**
 * The `/metrics` listener: plain HTTP, or HTTPS with the agent's SVID (`tls: true`), asking
 * clients for an SVID of the agent's trust domain with `mtls: true`. Plain HTTP on a
 * non-loopback address is allowed with a warning, as sdk's tools/prometheus does.
 */
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { AgentError } from '../../core/errors';
import type { Logger } from '../../core/log';
import type { X509Source } from '../../spire';

export interface MetricsListenConfig {
  /** host:port */
  listen: string;
  tls: boolean;
  mtls: boolean;
}

export interface MetricsPage {
  /** The page's body (text format, UTF-8). */
  page(): Promise<Buffer>;
  /** Called with a body once it is sent (and no longer referenced by the response). */
  recycle?(body: Buffer): void;
  readonly contentType: string;
}

export interface MetricsListener {
  /** The address it listens on (the port filled in when 0 was asked). */
  readonly address: string;
  close(): Promise<void>;
}

function splitHostPort(listen: string): { host: string; port: number } {
  const at = listen.lastIndexOf(':');
  const host = listen.slice(0, at).replace(/^\[|\]$/g, '');
  return { host: host || '0.0.0.0', port: Number(listen.slice(at + 1)) };
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

/** TLS material from the identity: the SVID chain and key, and the agent's own trust bundle. */
function tlsOptions(identity: X509Source, mtls: boolean): https.ServerOptions {
  const svid = identity.svid();
  const ca = mtls ? (identity.bundle(svid.trustDomain) ?? []).map((c) => c.toString()) : undefined;
  return {
    cert: svid.chain.map((c) => c.toString()).join('\n'),
    key: svid.key.export({ type: 'pkcs8', format: 'pem' }) as string,
    ...(mtls ? { ca, requestCert: true, rejectUnauthorized: true } : {}),
  };
}

export async function listenMetrics(cfg: MetricsListenConfig, page: MetricsPage, opts: { identity: X509Source; log: Logger }): Promise<MetricsListener> {
  const { host, port } = splitHostPort(cfg.listen);
  if (!cfg.tls && !isLoopback(host)) opts.log.warn('metrics served over plain HTTP on a non-loopback address; set metrics.tls', { listen: cfg.listen });
  const handler: http.RequestListener = (req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: the metrics are on /metrics\n');
      return;
    }
    page.page().then(
      (body) => res.writeHead(200, { 'content-type': page.contentType, 'content-length': body.length }).end(body, () => page.recycle?.(body)),
      (err: Error) => {
        opts.log.warn('metrics scrape failed', { error: err });
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`);
      },
    );
  };
  let server: http.Server | https.Server;
  let unwatch = () => {};
  if (cfg.tls) {
    const s = https.createServer(tlsOptions(opts.identity, cfg.mtls), handler);
    const update = () => {
      try {
        s.setSecureContext(tlsOptions(opts.identity, cfg.mtls));
      } catch (err) {
        opts.log.warn('metrics listener kept its previous certificate', { error: err });
      }
    };
    opts.identity.on('update', update);
    unwatch = () => opts.identity.off('update', update);
    server = s;
  } else {
    server = http.createServer(handler);
  }
  server.headersTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new AgentError('FAILED_PRECONDITION', `metrics.listen: cannot listen on ${cfg.listen}: ${err.code ?? err.message}`, { cause: err })),
    );
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  const bound = typeof addr === 'object' && addr ? `${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}` : cfg.listen;
  opts.log.info('metrics served', { listen: bound, tls: cfg.tls, mtls: cfg.mtls });
  return {
    address: bound,
    close: () =>
      new Promise<void>((resolve) => {
        unwatch();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
