/**
 * SPIFFE federation by bundle endpoint (SPIFFE Federation, profile `https_spiffe`): the
 * bundles of other trust domains fetched over HTTPS from their bundle endpoints, refreshed
 * before the refresh hint each bundle carries, and laid over the bundles of the agent's own
 * identity source so that mTLS verification and NSM token checks use them at once.
 *
 * - The endpoint's TLS certificate must be an X.509-SVID whose SPIFFE ID is exactly the
 *   configured `endpointId`, verified against the bundle of that ID's trust domain: the last
 *   bundle fetched from this endpoint when the ID is in the federated trust domain, else the
 *   operator's bootstrap `bundle` file, else the bundle the identity source holds for it (the
 *   own trust domain, SPIRE's federated bundles, `identity.files.federated`).
 * - A fetch that fails (unreachable, untrusted endpoint, malformed document, bundle of another
 *   trust domain) changes nothing: the last good bundle stays, the failure is logged and shown
 *   in `federation()`, and the fetch is retried sooner (bounded by the refresh bounds).
 * - Until the first fetch of a trust domain succeeds, that trust domain is trusted only if the
 *   identity source itself has a bundle for it; the bootstrap file serves to authenticate the
 *   endpoint, not as a trust bundle.
 * - A new bundle emits 'update' on this source: listeners (listenMtls) swap their secure
 *   context, dialers read it at their next handshake; open connections are not re-made.
 */
import { EventEmitter } from 'node:events';
import type { X509Certificate } from 'node:crypto';
import type * as https from 'node:https';
import { isIP } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { Clock, realClock } from '../core/clock';
import { AgentError } from '../core/errors';
import { Logger, silentLogger } from '../core/log';
import { parseBundle, readFileAsync } from './files';
import { parseWorkloadId } from './id';
import { parseSpiffeBundle, sameAuthorities, SpiffeBundle } from './jwks';
import { chainOf } from './mtls';
import type { SourceKind, X509Source } from './source';
import type { X509Context, X509Svid } from './svid';
import { verifyX509Svid } from './verify';

/** node:https, loaded by the first bundle fetch: an agent without federation does not load it. */
const httpsModule = () => require('node:https') as typeof https;

/** One `identity.federation` entry. */
export interface FederationSettings {
  /** The federated trust domain (name without scheme). */
  trustDomain: string;
  /** `https://host:port/path` of its bundle endpoint. */
  bundleEndpoint: string;
  /** The SPIFFE ID the endpoint's certificate must carry. */
  endpointId: string;
  /** Bootstrap: a bundle file (PEM, DER or SPIFFE bundle) of endpointId's trust domain. */
  bundle?: string;
  /** Bounds of the refresh interval, ms (defaults MIN_REFRESH_MS, MAX_REFRESH_MS). */
  minRefreshMs?: number;
  maxRefreshMs?: number;
  /** One fetch at most this long, ms (default 10 s). */
  timeoutMs?: number;
}

export interface FederationStatus {
  trustDomain: string;
  url: string;
  endpointId: string;
  /** pending: no fetch settled yet; ok: the last fetch succeeded; failing: it failed (the last good bundle, if any, is in use). */
  state: 'pending' | 'ok' | 'failing';
  /** X.509 authorities of the bundle in use (0 before the first good fetch). */
  authorities: number;
  sequence?: number;
  /** When the bundle in use was fetched (ms since the epoch). */
  fetched?: number;
  lastError?: { code: string; message: string; at: number };
  /** When the next fetch is due (ms since the epoch). */
  nextRefresh?: number;
}

/** Refresh interval when a bundle carries no spiffe_refresh_hint (SPIFFE Federation's suggestion). */
export const DEFAULT_REFRESH_HINT_S = 300;
export const MIN_REFRESH_MS = 5_000;
export const MAX_REFRESH_MS = 3_600_000;
const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_BODY_BYTES = 1 << 20;

export interface RefreshBounds {
  minMs: number;
  maxMs: number;
}

const clamp = (ms: number, b: RefreshBounds) => Math.min(b.maxMs, Math.max(b.minMs, ms));

/**
 * When to fetch again after a good fetch: a tenth before the bundle's refresh hint (so that
 * timer slack never makes it late), within the bounds. A missing hint counts as
 * DEFAULT_REFRESH_HINT_S.
 */
export function refreshDelayMs(hintS: number | undefined, bounds: RefreshBounds): number {
  return clamp(Math.floor((hintS ?? DEFAULT_REFRESH_HINT_S) * 900), bounds);
}

/**
 * When to try again after `failures` failed fetches in a row: from the minimum, doubling, and
 * never later than the normal interval `intervalMs` (the last hint's, or the default's).
 */
export function retryDelayMs(failures: number, intervalMs: number, bounds: RefreshBounds): number {
  const backoff = bounds.minMs * 2 ** Math.min(Math.max(0, failures - 1), 20);
  return clamp(Math.min(backoff, intervalMs), bounds);
}

/** IPv6 literals come out of URL.hostname in brackets. */
const bareHost = (hostname: string) => (hostname.startsWith('[') ? hostname.slice(1, -1) : hostname);

export interface FetchOptions {
  trustDomain: string;
  endpointId: string;
  /** The authorities the endpoint's SVID must chain to (of endpointId's trust domain). */
  roots: readonly X509Certificate[];
  timeoutMs?: number;
  now?: () => number;
}

/**
 * GETs a SPIFFE bundle from `url` with profile https_spiffe and parses it. Rejects with
 * BUNDLE_ENDPOINT_UNAVAILABLE, BUNDLE_ENDPOINT_UNTRUSTED, BUNDLE_INVALID or
 * BUNDLE_WRONG_TRUST_DOMAIN, the message naming the trust domain and the URL. The response
 * body is read only from a server whose certificate passed the checks.
 */
export function fetchSpiffeBundle(url: string, opts: FetchOptions): Promise<SpiffeBundle> {
  const where = `trust domain ${opts.trustDomain}: bundle endpoint ${url}`;
  const now = opts.now ?? Date.now;
  const endpointTd = parseWorkloadId(opts.endpointId).trustDomain;
  return new Promise((resolve, reject) => {
    let u: URL;
    try {
      u = new URL(url);
      if (u.protocol !== 'https:') throw new Error('not an https:// URL');
    } catch (err) {
      reject(new AgentError('INVALID_ARGUMENT', `${where}: ${(err as Error).message}`));
      return;
    }
    const host = bareHost(u.hostname);
    let untrusted: AgentError | undefined;
    let verified = false;
    const fail = (err: AgentError) => {
      req.destroy();
      reject(err);
    };
    const req = httpsModule().request({
      host,
      port: u.port || 443,
      path: `${u.pathname}${u.search}`,
      method: 'GET',
      headers: { accept: 'application/json' },
      agent: false,
      minVersion: 'TLSv1.2',
      ...(isIP(host) ? {} : { servername: host }),
      // The chain is verified below by the SPIFFE rules against one trust domain's bundle,
      // not by OpenSSL against the public roots; nothing is read before that passed.
      rejectUnauthorized: false,
    });
    req.on('socket', (socket) => {
      socket.once('secureConnect', () => {
        try {
          const peer = verifyX509Svid(chainOf((socket as TLSSocket).getPeerCertificate(true)), new Map([[endpointTd, opts.roots]]), now());
          if (peer.id !== opts.endpointId) throw new Error(`its certificate is the SVID of ${peer.id}, not of ${opts.endpointId}`);
          verified = true;
        } catch (err) {
          untrusted = new AgentError('BUNDLE_ENDPOINT_UNTRUSTED', `${where}: not the endpoint ${opts.endpointId}: ${(err as Error).message}`);
          fail(untrusted);
        }
      });
    });
    req.setTimeout(opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, () => fail(new AgentError('BUNDLE_ENDPOINT_UNAVAILABLE', `${where}: no answer in ${opts.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms`)));
    req.on('error', (err) => {
      if (untrusted) return;
      reject(new AgentError('BUNDLE_ENDPOINT_UNAVAILABLE', `${where}: cannot fetch: ${err.message}`, { cause: err }));
    });
    req.on('response', (res) => {
      if (!verified) return fail(untrusted ?? new AgentError('BUNDLE_ENDPOINT_UNTRUSTED', `${where}: the server was not authenticated`));
      if (res.statusCode !== 200) {
        res.resume();
        return fail(new AgentError('BUNDLE_ENDPOINT_UNAVAILABLE', `${where}: answered HTTP ${res.statusCode}${res.statusCode && res.statusCode >= 300 && res.statusCode < 400 ? ' (redirects are not followed)' : ''}`));
      }
      const parts: Buffer[] = [];
      let size = 0;
      res.on('data', (d: Buffer) => {
        size += d.length;
        if (size > MAX_BODY_BYTES) fail(new AgentError('BUNDLE_INVALID', `${where}: the bundle is larger than ${MAX_BODY_BYTES} bytes`));
        else parts.push(d);
      });
      res.on('error', (err) => fail(new AgentError('BUNDLE_ENDPOINT_UNAVAILABLE', `${where}: ${err.message}`)));
      res.on('end', () => {
        try {
          resolve(parseSpiffeBundle(Buffer.concat(parts), where, opts.trustDomain));
        } catch (err) {
          reject(err);
        }
      });
    });
    req.end();
  });
}

/** One federated trust domain: fetches its bundle, keeps the last good one, schedules the next fetch. */
export class BundleEndpointClient {
  private current: { authorities: X509Certificate[]; sequence?: number; fetched: number } | undefined;
  private failures = 0;
  private intervalMs: number;
  private cancelTimer: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private closed = false;
  private readonly bounds: RefreshBounds;
  readonly view: FederationStatus;

  constructor(
    readonly cfg: FederationSettings,
    private readonly deps: {
      /** The bundle the identity source holds for a trust domain. */
      held: (trustDomain: string) => readonly X509Certificate[] | undefined;
      /** Called after the bundle in use changed. */
      changed: () => void;
      clock: Clock;
      log: Logger;
      readFile?: (file: string) => Promise<Buffer>;
    },
  ) {
    this.bounds = { minMs: cfg.minRefreshMs ?? MIN_REFRESH_MS, maxMs: cfg.maxRefreshMs ?? MAX_REFRESH_MS };
    this.intervalMs = refreshDelayMs(undefined, this.bounds);
    this.view = { trustDomain: cfg.trustDomain, url: cfg.bundleEndpoint, endpointId: cfg.endpointId, state: 'pending', authorities: 0 };
  }

  /** The last good bundle fetched, if any. */
  authorities(): readonly X509Certificate[] | undefined {
    return this.current?.authorities;
  }

  /** Fetches now (one fetch at a time) and schedules the next; never rejects. */
  refresh(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (!this.running) {
      this.running = this.fetchOnce().finally(() => {
        this.running = undefined;
      });
    }
    return this.running;
  }

  close(): void {
    this.closed = true;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
  }

  /** The authorities that authenticate the endpoint (see the file comment for the order). */
  private async verificationRoots(): Promise<readonly X509Certificate[]> {
    const td = parseWorkloadId(this.cfg.endpointId).trustDomain;
    if (td === this.cfg.trustDomain && this.current?.authorities.length) return this.current.authorities;
    if (this.cfg.bundle) {
      try {
        const certs = parseBundle(await (this.deps.readFile ?? readFileAsync)(this.cfg.bundle));
        if (certs.length) return certs;
      } catch (err) {
        throw new AgentError('BUNDLE_INVALID', `trust domain ${this.cfg.trustDomain}: bootstrap bundle ${this.cfg.bundle}: ${(err as Error).message}`);
      }
    }
    const held = this.deps.held(td);
    if (held?.length) return held;
    throw new AgentError(
      'BUNDLE_ENDPOINT_UNTRUSTED',
      `trust domain ${this.cfg.trustDomain}: bundle endpoint ${this.cfg.bundleEndpoint}: no bundle of trust domain ${td} to authenticate ${this.cfg.endpointId} (give a bootstrap bundle file)`,
    );
  }

  private async fetchOnce(): Promise<void> {
    const { clock, log } = this.deps;
    let delay: number;
    try {
      const roots = await this.verificationRoots();
      const got = await fetchSpiffeBundle(this.cfg.bundleEndpoint, {
        trustDomain: this.cfg.trustDomain,
        endpointId: this.cfg.endpointId,
        roots,
        timeoutMs: this.cfg.timeoutMs,
        now: () => clock.now(),
      });
      if (this.closed) return;
      const changed = !this.current || !sameAuthorities(this.current.authorities, got.x509Authorities);
      this.current = { authorities: got.x509Authorities, sequence: got.sequence, fetched: clock.now() };
      this.failures = 0;
      this.intervalMs = refreshDelayMs(got.refreshHintS, this.bounds);
      delay = this.intervalMs;
      Object.assign(this.view, { state: 'ok', authorities: got.x509Authorities.length, sequence: got.sequence, fetched: this.current.fetched });
      delete this.view.lastError;
      if (changed) {
        const fields = { trustDomain: this.cfg.trustDomain, url: this.cfg.bundleEndpoint, authorities: got.x509Authorities.length, sequence: got.sequence };
        if (got.x509Authorities.length === 0) log.warn('federated bundle has no X.509 authorities: peers of this trust domain are refused', fields);
        else log.info('federated bundle updated', fields);
        this.deps.changed();
      }
    } catch (err) {
      if (this.closed) return;
      const e = AgentError.from(err, 'BUNDLE_ENDPOINT_UNAVAILABLE');
      this.failures++;
      delay = retryDelayMs(this.failures, this.intervalMs, this.bounds);
      Object.assign(this.view, { state: 'failing', lastError: { code: e.code, message: e.message, at: clock.now() } });
      log.warn('federated bundle refresh failed, the last good bundle stays', {
        trustDomain: this.cfg.trustDomain,
        url: this.cfg.bundleEndpoint,
        code: e.code,
        error: e.message,
        kept: this.current ? this.current.authorities.length : 0,
        retryInMs: delay,
      });
    }
    this.view.nextRefresh = clock.now() + delay;
    this.cancelTimer?.();
    this.cancelTimer = clock.after(delay, () => void this.refresh());
  }
}

/**
 * An X509Source that is `base` with the bundles of `entries` laid over its own: the SVID,
 * readiness and listener checks are the base's; `current().bundles` holds, for each federated
 * trust domain with a good fetch, the fetched bundle (replacing any the base has for it).
 */
export class FederatedX509Source extends EventEmitter implements X509Source {
  private readonly clients: BundleEndpointClient[];
  private merged: { base: X509Context; ctx: X509Context } | undefined;
  private started = false;
  private readonly onBaseUpdate = () => {
    this.start();
    this.changed();
  };
  private readonly onBaseProblem = (err: AgentError) => this.emit('problem', err);

  constructor(
    private readonly base: X509Source,
    entries: readonly FederationSettings[],
    opts: { log?: Logger; clock?: Clock; readFile?: (file: string) => Promise<Buffer> } = {},
  ) {
    super();
    this.setMaxListeners(0);
    const log = opts.log ?? silentLogger;
    const clock = opts.clock ?? realClock;
    this.clients = entries.map(
      (cfg) => new BundleEndpointClient(cfg, { held: (td) => this.bundle(td), changed: () => this.changed(), clock, log, readFile: opts.readFile }),
    );
    base.on('update', this.onBaseUpdate);
    base.on('problem', this.onBaseProblem);
    if (base.current()) this.start();
  }

  /** The endpoints may need the source's bundles to be authenticated: fetching starts with its first state. */
  private start(): void {
    if (this.started) return;
    this.started = true;
    for (const c of this.clients) void c.refresh();
  }

  get kind(): SourceKind {
    return this.base.kind;
  }

  current(): X509Context | undefined {
    const base = this.base.current();
    if (!base) return undefined;
    if (this.merged?.base === base) return this.merged.ctx;
    let own: string | undefined;
    try {
      own = this.base.svid().trustDomain;
    } catch {
      own = undefined;
    }
    const bundles = new Map(base.bundles);
    for (const c of this.clients) {
      const fetched = c.authorities();
      // never over the own trust domain: that is the identity source's to say
      if (fetched && c.cfg.trustDomain !== own) bundles.set(c.cfg.trustDomain, fetched);
    }
    const ctx: X509Context = { svids: base.svids, bundles };
    this.merged = { base, ctx };
    return ctx;
  }

  svid(): X509Svid {
    return this.base.svid();
  }

  bundle(trustDomain: string): readonly X509Certificate[] | undefined {
    return this.current()?.bundles.get(trustDomain);
  }

  async ready(signal?: AbortSignal): Promise<X509Context> {
    await this.base.ready(signal);
    return this.current() as X509Context;
  }

  checkListener(host: string): void {
    this.base.checkListener(host);
  }

  /** Each federated trust domain's bundle endpoint: state, bundle in use, last error. */
  federation(): FederationStatus[] {
    return this.clients.map((c) => ({ ...c.view }));
  }

  /** Fetches every bundle now; resolves when all settled. */
  async refreshAll(): Promise<void> {
    this.started = true;
    await Promise.all(this.clients.map((c) => c.refresh()));
  }

  private changed(): void {
    this.merged = undefined;
    const ctx = this.current();
    if (ctx) this.emit('update', ctx);
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.close();
    this.base.off('update', this.onBaseUpdate);
    this.base.off('problem', this.onBaseProblem);
    this.removeAllListeners();
    await this.base.close();
  }
}
