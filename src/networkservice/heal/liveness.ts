// SPDX-License-Identifier: Apache-2.0
/**
 * Data-plane liveness check for kernel-interface connections, as NSM's
 * sdk-kernel `heal.KernelLivenessCheck`: heal (client.ts, trigger c) runs it
 * every 200 ms by default and, when it says dead, re-requests with reselect.
 */
import type { Connection } from '../../api';
import type { Logger } from '../../core/log';
import { icmpEcho, parseCidr, type IpFamily } from '../../sys';

export interface KernelLivenessCheckOptions {
  /**
   * The network namespace (name under /run/netns, absolute path or file:// URL) holding the
   * connection's interface and its src_ip_addrs, i.e. the client side; undefined when this
   * connection has no kernel interface here (then there is nothing to check).
   */
  netnsOf(conn: Connection): string | undefined;
  /** Per-check timeout in ms; 4 echo requests are spread over it. Default 100 (NSM's). */
  timeoutMs?: number;
  /** Where to say why a pair failed with an error (debug level). */
  log?: Logger;
}

/** NSM's default per-check timeout (cmd-nsc uses 1 s). */
export const DEFAULT_LIVENESS_TIMEOUT_MS = 100;
/** Echo requests per pair and check, spread over the timeout (NSM's defaultPacketCount). */
const PACKETS = 4;

/**
 * Builds a liveness check `(conn) => Promise<boolean>` (true = alive) with the semantics of
 * NSM's kernel liveness check:
 *
 * - Pairs are every `context.ip_context.src_ip_addrs` x `dst_ip_addrs` of the same family
 *   (prefix lengths are stripped; unparsable entries are skipped, as NSM's GetSrcIPNets does).
 * - Every pair is checked in parallel: 4 ICMP/ICMPv6 echo requests from src to dst, sent from
 *   inside `netnsOf(conn)` and spread over `timeoutMs`; a pair is done at its first reply.
 * - Dead (false) if any pair gets zero replies within the timeout, or its check fails with an
 *   error (ENETUNREACH, src address gone, ...; NSM also counts a pinger error as dead). A
 *   namespace that no longer exists is therefore dead too.
 * - Alive (true) when there is nothing to check: no netns (`netnsOf` returned undefined), no
 *   addresses, or no pair of the same family.
 *
 * The promise never rejects and settles within about `timeoutMs` (plus queueing on the libuv
 * pool: each pair waiting for a reply holds a pool thread). Needs root (CAP_NET_RAW and
 * CAP_SYS_ADMIN).
 */
export function kernelLivenessCheck(opts: KernelLivenessCheckOptions): (conn: Connection) => Promise<boolean> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_LIVENESS_TIMEOUT_MS;
  if (!(timeoutMs > 0)) throw new RangeError(`kernelLivenessCheck: timeoutMs must be > 0, got ${timeoutMs}`);
  return async (conn) => {
    const netns = opts.netnsOf(conn);
    if (netns === undefined) return true;
    const ipc = conn.context?.ip_context;
    const srcs = addresses(ipc?.src_ip_addrs);
    const dsts = addresses(ipc?.dst_ip_addrs);
    const pairs: Array<[string, string]> = [];
    for (const d of dsts) for (const s of srcs) if (s.family === d.family) pairs.push([s.ip, d.ip]);
    if (pairs.length === 0) return true;
    const results = await Promise.all(
      pairs.map(async ([src, dst]) => {
        try {
          return (await icmpEcho(netns, src, dst, { timeoutMs, count: PACKETS })) > 0;
        } catch (err) {
          opts.log?.debug('liveness check failed', { conn: conn.id, netns, src, dst, err });
          return false;
        }
      }),
    );
    return results.every(Boolean);
  };
}

function addresses(list: readonly string[] | undefined): Array<{ ip: string; family: IpFamily }> {
  const out: Array<{ ip: string; family: IpFamily }> = [];
  for (const text of list ?? []) {
    try {
      const p = parseCidr(text);
      out.push({ ip: text.split('/')[0]!, family: p.family });
    } catch {
      // skipped, like NSM's GetSrcIPNets/GetDstIPNets
    }
  }
  return out;
}
