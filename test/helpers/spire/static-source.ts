/** An X509Source whose state tests set directly (no Workload API, no files). */
import type { X509Certificate } from 'node:crypto';
import { AgentError } from '../../../src/core/errors';
import { LocalCa } from '../../../src/spire/ca';
import { BaseX509Source } from '../../../src/spire/source';
import type { X509Context, X509Svid } from '../../../src/spire/svid';

export class StaticSource extends BaseX509Source {
  readonly kind = 'files' as const;
  constructor(ctx?: X509Context) {
    super({ anyKeyType: true }); // tests feed any SVID they like
    if (ctx) this.accept(ctx);
  }
  set(ctx: X509Context): void {
    this.accept(ctx);
  }
  /** Forgets the identity, as a Workload API revocation does. */
  clear(): void {
    this.revoke(new AgentError('PERMISSION_DENIED', 'revoked by test'));
  }
  async close(): Promise<void> {
    this.markClosed();
  }
}

/** A context with one SVID and bundles for the given CAs (trust domain of each CA). */
export function contextOf(svid: X509Svid, ...cas: (LocalCa | [string, X509Certificate[]])[]): X509Context {
  const bundles = new Map<string, readonly X509Certificate[]>();
  for (const ca of cas) {
    if (Array.isArray(ca)) bundles.set(ca[0], ca[1]);
    else bundles.set(ca.trustDomain, ca.bundle());
  }
  return { svids: [svid], bundles };
}
