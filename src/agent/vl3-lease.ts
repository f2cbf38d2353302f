/**
 * vL3 endpoints' prefix leases (src/vl3/ipam/lease.ts): mutual TLS with the agent's SVID for
 * tcp:// servers, as upstream vl3 endpoints dial vl3-ipam (no NSM tokens: vl3-ipam has none).
 */
import type { Logger } from '../core/log';
import type { X509Source } from '../spire';
import { channelCredentials } from '../spire';
import { PrefixLease } from '../vl3/ipam/lease';
import type { PrefixSource } from './endpoints/kind';

export function leasePrefix(url: string, opts: { previous: string | undefined; identity: X509Source; log: Logger }): PrefixSource {
  const lease = new PrefixLease({
    url,
    previous: opts.previous,
    log: opts.log,
    channel: (u) => (u.protocol === 'tcp:' ? channelCredentials(opts.identity) : undefined),
  });
  lease.start();
  return lease;
}
