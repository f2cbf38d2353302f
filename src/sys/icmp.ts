// SPDX-License-Identifier: Apache-2.0
/**
 * ICMP echo ("ping") from inside a network namespace, for data-plane liveness
 * checks. Node has no raw sockets: the native addon opens a raw ICMP/ICMPv6
 * socket in the namespace on a libuv pool thread (the event loop never
 * blocks) and does the sending and waiting there. Needs CAP_NET_RAW and
 * CAP_SYS_ADMIN (setns).
 */
import { invalidArgument, rethrow } from './errors';
import { formatIp, parseCidr } from './ip';
import { native } from './native';
import { netnsPath as resolveNetnsPath, openNetns } from './netns';

export interface IcmpEchoOptions {
  /** How long to wait for a reply, in ms (> 0). Requests are spread over it. */
  timeoutMs: number;
  /** Echo requests to send, evenly spaced over the timeout (first at once). Default 4, as NSM. */
  count?: number;
}

/**
 * Sends ICMP (or ICMPv6) echo requests from `src` to `dst` inside the network
 * namespace `netnsPath` (a name under /run/netns, an absolute path such as
 * '/proc/<pid>/ns/net', or a file:// URL) and resolves to the number of echo
 * replies received: it stops at the first reply, so 1 (rarely more) means the
 * path works and 0 means nothing came back within `timeoutMs`. "No reply" is
 * not an error.
 *
 * Addresses may carry a prefix length ('172.16.1.101/32'), which is ignored;
 * both must be of the same family. `src` must be an address of the namespace
 * (the socket is bound to it).
 *
 * Fails with SysError: ENOENT (no such namespace), EINVAL (bad address, mixed
 * families, bad options), EADDRNOTAVAIL ('bind': `src` is not in the
 * namespace), ENETUNREACH ('sendto': no route), EPERM (no CAP_NET_RAW), ...
 *
 * Each call holds one libuv pool thread for up to `timeoutMs` (less when a
 * reply comes): with UV_THREADPOOL_SIZE=4, more than four checks that wait
 * for nothing queue behind each other and delay fs/dns work.
 */
export async function icmpEcho(netnsPath: string, src: string, dst: string, opts: IcmpEchoOptions): Promise<number> {
  const count = opts.count ?? 4;
  if (!(typeof opts.timeoutMs === 'number' && opts.timeoutMs > 0 && opts.timeoutMs <= 3_600_000)) {
    throw invalidArgument('icmpEcho', String(opts.timeoutMs), 'timeoutMs must be > 0 and <= 3600000');
  }
  if (!Number.isInteger(count) || count < 1 || count > 65535) {
    throw invalidArgument('icmpEcho', String(count), 'count must be an integer in 1..65535');
  }
  const s = parseCidr(src, 'icmpEcho');
  const d = parseCidr(dst, 'icmpEcho');
  if (s.family !== d.family) {
    throw invalidArgument('icmpEcho', `${src} -> ${dst}`, 'source and destination must be of the same family');
  }
  const path = resolveNetnsPath(netnsPath);
  const ns = openNetns(path);
  let pending: Promise<number>;
  try {
    // The addon dups the fd before returning, so ours can be closed at once.
    pending = native().icmpEcho(ns.fd, formatIp(s.bytes), formatIp(d.bytes), opts.timeoutMs, count);
  } catch (err) {
    rethrow(err, { path });
  } finally {
    ns.close();
  }
  try {
    return await pending;
  } catch (err) {
    // bind/sendto errors name the address: say which namespace too.
    const named = typeof (err as { path?: unknown } | null)?.path === 'string';
    rethrow(err, named ? { detail: `in netns ${path}` } : { path });
  }
}
