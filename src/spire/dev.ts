/**
 * The development identity (`identity.source: dev`, the embedded default): a local trust
 * domain CA kept in `caDir` (created on first use) issues the agent a short-lived SVID and
 * renews it at half its lifetime. Nothing outside this host trusts that CA unless it is
 * copied there, so this source refuses to serve on non-loopback listeners unless
 * `allowNonLoopback` is set (checkListener): an agent on a real network must use SPIRE or
 * files. Agents sharing one caDir (tests, one machine) share the trust domain.
 */
import { isIP } from 'node:net';
import { Clock, realClock } from '../core/clock';
import { AgentError } from '../core/errors';
import { LocalCa } from './ca';
import { parseSpiffeId, parseWorkloadId } from './id';
import { BaseX509Source, SourceOptions } from './source';

export const DEV_TRUST_DOMAIN = 'nsm.local';
const DEV_CA_TTL_MS = 10 * 365 * 24 * 3600_000;
/** Retry an issuance that failed (unreadable CA, full disk) after this long. */
const RETRY_MS = 30_000;

export interface DevOptions extends SourceOptions {
  caDir: string;
  /** Default nsm.local; must match an existing CA in caDir. */
  trustDomain?: string;
  /** The agent's ID; default spiffe://<trustDomain>/nsm-agent/<name>. */
  id?: string;
  /** Used for the default ID (default: the host name). */
  name?: string;
  /** SVID lifetime, ms (default 1 h). */
  svidTtlMs?: number;
  allowNonLoopback?: boolean;
  clock?: Clock;
}

/** True for 127.0.0.0/8, ::1, ::ffff:127.x and `localhost`. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost') return true;
  const v = isIP(h);
  if (v === 4) return h.startsWith('127.');
  if (v === 6) return h === '::1' || /^::ffff:127\./.test(h);
  return false;
}

/** The host of `host`, `host:port` or `[v6]:port`. */
export function hostOf(address: string): string {
  const bracket = /^\[([^\]]+)\](:\d+)?$/.exec(address);
  if (bracket) return bracket[1] as string;
  if (isIP(address) === 6) return address;
  const colon = address.lastIndexOf(':');
  return colon >= 0 ? address.slice(0, colon) : address;
}

export class DevX509Source extends BaseX509Source {
  readonly kind = 'dev' as const;
  readonly id: string;
  private readonly clock: Clock;
  private ca: LocalCa | undefined;
  private stopTimer: () => void = () => {};

  constructor(private readonly dev: DevOptions) {
    super(dev);
    this.clock = dev.clock ?? realClock;
    const td = dev.trustDomain ?? DEV_TRUST_DOMAIN;
    const name = (dev.name ?? 'agent').replace(/[^a-zA-Z0-9._-]/g, '-');
    this.id = dev.id ?? `spiffe://${td}/nsm-agent/${name}`;
    // Configuration errors are reported through ready() like the other sources' errors.
    try {
      parseSpiffeId(`spiffe://${td}`);
      const id = parseWorkloadId(this.id);
      if (id.trustDomain !== td) throw new AgentError('INVALID_ARGUMENT', `identity ${this.id} is not in trust domain ${td}`);
      this.ca = this.loadOrCreate(td);
      this.renew();
    } catch (err) {
      this.fail(AgentError.from(err, 'INVALID_ARGUMENT'));
    }
  }

  private loadOrCreate(td: string): LocalCa {
    if (LocalCa.exists(this.dev.caDir)) {
      const ca = LocalCa.load(this.dev.caDir);
      if (ca.trustDomain !== td) {
        throw new AgentError('INVALID_ARGUMENT', `the CA in ${this.dev.caDir} is for trust domain ${ca.trustDomain}, not ${td}`);
      }
      return ca;
    }
    const ca = LocalCa.create({ trustDomain: td, ttlMs: DEV_CA_TTL_MS, now: this.clock.now() });
    ca.save(this.dev.caDir);
    this.log.info('created a development CA', { dir: this.dev.caDir, trustDomain: td });
    return ca;
  }

  /** Issues a fresh SVID and schedules the next renewal at half its lifetime. */
  private renew(): void {
    if (this.closed || !this.ca) return;
    let delay = RETRY_MS;
    try {
      const now = this.clock.now();
      const svid = this.ca.issue(this.id, { ttlMs: this.dev.svidTtlMs ?? 3600_000, now });
      this.accept({ svids: [svid], bundles: new Map([[this.ca.trustDomain, this.ca.bundle()]]) });
      delay = Math.max(1000, (svid.expiresAt - now) / 2);
    } catch (err) {
      this.report(AgentError.from(err));
    }
    this.stopTimer = this.clock.after(delay, () => this.renew());
  }

  checkListener(address: string): void {
    if (this.dev.allowNonLoopback || isLoopbackHost(hostOf(address))) return;
    throw new AgentError(
      'FAILED_PRECONDITION',
      `the development identity (identity.source: dev) may only serve loopback addresses, not ${address}: ` +
        'use identity.source spiffe or files, or set identity.dev.allowNonLoopback: true',
    );
  }

  async close(): Promise<void> {
    this.markClosed();
    this.stopTimer();
  }
}
