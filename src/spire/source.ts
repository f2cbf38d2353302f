/**
 * X509Source: where the agent's identity comes from. Three implementations share it: the
 * Workload API (workload.ts), certificate files (files.ts) and the development CA (dev.ts).
 *
 * Contract:
 * - `current()` is the last good state, or undefined before the first one (or after the
 *   Workload API revoked the identity). A bad update never replaces a good state; an SVID
 *   whose key cannot sign ES256 NSM tokens is a bad update (unless `anyKeyType`).
 * - `svid()` is the SVID to present now; throws UNAVAILABLE when there is none.
 * - every accepted state emits 'update' (listeners get the new X509Context); TLS credentials
 *   and token sources read the source at each handshake or token, so rotation needs no restart.
 * - problems emit 'problem' (an AgentError) and are logged; they never throw at the listener.
 * - `ready()` resolves with the first state; rejects on a fatal error, on close, or when the
 *   signal aborts.
 * - `checkListener(host)` throws FAILED_PRECONDITION if this source must not serve on that
 *   host (the development CA on a non-loopback address).
 * - `close()` stops watching (streams, timers, file polls) and releases every handle.
 */
import { EventEmitter } from 'node:events';
import type { X509Certificate } from 'node:crypto';
import { AgentError } from '../core/errors';
import type { Logger } from '../core/log';
import { silentLogger } from '../core/log';
import { pickSvid, X509Context, X509Svid } from './svid';
import { assertEs256Key } from './token';

export type SourceKind = 'spiffe' | 'files' | 'dev';

export interface X509Source {
  readonly kind: SourceKind;
  current(): X509Context | undefined;
  svid(): X509Svid;
  /** The X.509 authorities of a trust domain (name without scheme). */
  bundle(trustDomain: string): readonly X509Certificate[] | undefined;
  ready(signal?: AbortSignal): Promise<X509Context>;
  checkListener(host: string): void;
  on(event: 'update', fn: (ctx: X509Context) => void): this;
  on(event: 'problem', fn: (err: AgentError) => void): this;
  off(event: 'update', fn: (ctx: X509Context) => void): this;
  off(event: 'problem', fn: (err: AgentError) => void): this;
  close(): Promise<void>;
}

export interface SourceOptions {
  log?: Logger;
  /** Present the SVID with this hint instead of the first one. */
  hint?: string;
  /**
   * Accept SVIDs whose key cannot sign ES256. Off by default: the agent signs NSM tokens with
   * its SVID key, so an RSA or P-384 SVID is bad input, refused like a malformed one.
   */
  anyKeyType?: boolean;
}

/** State keeping, events and `ready()` shared by the sources. */
export abstract class BaseX509Source extends EventEmitter implements X509Source {
  abstract readonly kind: SourceKind;
  protected readonly log: Logger;
  protected closed = false;
  private state: X509Context | undefined;
  private fatal: AgentError | undefined;
  private waiters = new Set<{ resolve: (c: X509Context) => void; reject: (e: unknown) => void }>();

  constructor(protected readonly opts: SourceOptions = {}) {
    super();
    // Every TLS credential in use listens here (one per dialed target): no listener cap.
    this.setMaxListeners(0);
    this.log = opts.log ?? silentLogger;
  }

  current(): X509Context | undefined {
    return this.state;
  }

  svid(): X509Svid {
    const ctx = this.state;
    if (!ctx) throw new AgentError('UNAVAILABLE', this.fatal ? `no SPIFFE identity: ${this.fatal.message}` : 'no SPIFFE identity yet');
    const s = pickSvid(ctx, this.opts.hint);
    if (!s) throw new AgentError('UNAVAILABLE', `no SVID with hint ${JSON.stringify(this.opts.hint)}`);
    return s;
  }

  bundle(trustDomain: string): readonly X509Certificate[] | undefined {
    return this.state?.bundles.get(trustDomain);
  }

  checkListener(_host: string): void {}

  ready(signal?: AbortSignal): Promise<X509Context> {
    if (this.state) return Promise.resolve(this.state);
    if (this.fatal) return Promise.reject(this.fatal);
    if (this.closed) return Promise.reject(new AgentError('CANCELLED', 'the identity source is closed'));
    return new Promise((resolve, reject) => {
      const w = {
        resolve: (c: X509Context) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(c);
        },
        reject: (e: unknown) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      const onAbort = () => {
        this.waiters.delete(w);
        reject(AgentError.from(signal?.reason ?? new AgentError('CANCELLED', 'cancelled'), 'CANCELLED'));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(w);
    });
  }

  /** Accepts a new state: stored, announced, and `ready()` waiters resolved. */
  protected accept(ctx: X509Context): void {
    if (this.closed) return;
    const picked = pickSvid(ctx, this.opts.hint);
    if (picked === undefined) {
      this.report(new AgentError('INVALID_ARGUMENT', `update ignored: no SVID${this.opts.hint ? ` with hint ${this.opts.hint}` : ''}`));
      return;
    }
    if (!this.opts.anyKeyType) {
      try {
        assertEs256Key(picked.key, `the SVID key of ${picked.id}`);
      } catch (err) {
        this.report(new AgentError('INVALID_ARGUMENT', `update ignored: ${(err as Error).message}`));
        return;
      }
    }
    const first = !this.state;
    this.state = ctx;
    this.fatal = undefined;
    const s = pickSvid(ctx, this.opts.hint);
    this.log[first ? 'info' : 'debug']('SPIFFE identity updated', {
      source: this.kind,
      id: s?.id,
      expires: s ? new Date(s.expiresAt).toISOString() : undefined,
      trustDomains: [...ctx.bundles.keys()].join(','),
    });
    for (const w of this.waiters) w.resolve(ctx);
    this.waiters.clear();
    this.emit('update', ctx);
  }

  /** Forgets the state (the identity was revoked); `svid()` throws until the next update. */
  protected revoke(reason: AgentError): void {
    if (this.state) this.log.warn('SPIFFE identity revoked, no longer presented', { source: this.kind, error: reason.message });
    this.state = undefined;
    this.report(reason);
  }

  /** A problem that keeps the last good state. */
  protected report(err: AgentError): void {
    if (this.closed) return;
    this.log.warn('SPIFFE identity problem', { source: this.kind, code: err.code, error: err.message });
    if (this.listenerCount('problem') > 0) this.emit('problem', err);
  }

  /** A problem after which this source will never produce a state: fails `ready()`. */
  protected fail(err: AgentError): void {
    this.fatal = err;
    this.report(err);
    for (const w of this.waiters) w.reject(err);
    this.waiters.clear();
  }

  /** Marks the source closed and fails pending `ready()` calls; subclasses release handles. */
  protected markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    const err = new AgentError('CANCELLED', 'the identity source is closed');
    for (const w of this.waiters) w.reject(err);
    this.waiters.clear();
    this.removeAllListeners();
  }

  abstract close(): Promise<void>;
}
