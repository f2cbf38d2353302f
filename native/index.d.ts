// SPDX-License-Identifier: Apache-2.0
// Typed surface of build/Release/nsm_native.node. Loaded only by
// src/sys/native.ts; everything else goes through src/sys.
//
// Errors thrown by these functions are Node-style errno errors:
//   { message: "ENOENT: no such file or directory, setns '/run/netns/x'",
//     code: 'ENOENT', errno: -2, syscall: 'setns', path?: string }
// Bad argument types throw TypeError with code 'ERR_INVALID_ARG_TYPE'.

/** A Node-style errno error as thrown by the addon. */
export interface NativeErrnoError extends Error {
  code: string;
  /** Negative errno, as in Node's fs errors. */
  errno: number;
  syscall: string;
  path?: string;
}

export interface TunFlags {
  /** IFF_TAP instead of IFF_TUN. */
  tap?: boolean;
  /** IFF_MULTI_QUEUE: open the same name again to get more queues. */
  multiQueue?: boolean;
  /** Open /dev/net/tun with O_NONBLOCK. */
  nonBlocking?: boolean;
}

export interface TunHandle {
  /** Owned by the caller; close it with fs.closeSync to drop the queue. */
  fd: number;
  /** Name the kernel gave the device (resolves patterns like "tun%d"). */
  name: string;
}

export interface NsmNative {
  /**
   * setns(fd, CLONE_NEWNET) on the calling thread, run `fn` synchronously,
   * then switch back (to the home ns for an outermost call, to the enclosing
   * call's ns when nested) before returning or rethrowing. Aborts the process
   * if switching back fails. Anything `fn` schedules asynchronously runs in
   * the home ns; sockets `fn` creates stay bound to the target ns.
   */
  withNetns<T>(fd: number, fn: () => T): T;
  /**
   * Like `ip netns add`: make the parent directory a shared mount, create
   * `path` (EEXIST if present) and bind-mount a new empty netns onto it. The
   * unshare happens on a short-lived helper thread. Blocks the caller for the
   * kernel's namespace setup (on the order of a millisecond).
   */
  createNetns(path: string): void;
  /** umount2(MNT_DETACH) + unlink, like `ip netns del`. */
  deleteNetns(path: string): void;
  /** Create/attach a TUN or TAP (always IFF_NO_PI) in the calling thread's netns. */
  openTun(name: string, flags?: TunFlags): TunHandle;
  /**
   * Give back to the kernel what the process holds and no longer uses: a V8 collection with
   * memory reduction (blocks for it, tens of milliseconds), then malloc_trim(0). True when
   * malloc_trim released pages.
   */
  releaseMemory(): boolean;
  /** Send `state` to $NOTIFY_SOCKET; false if the variable is unset or empty. */
  sdNotify(state: string): boolean;
  /** One datagram to the unix datagram socket at `path` (journald's native protocol). */
  sendDatagram(path: string, data: Buffer): void;
  /** getsockopt(SO_PEERCRED) on a connected unix socket fd. */
  peerCredentials(fd: number): { pid: number; uid: number; gid: number };
  /**
   * One exchange on the unix stream socket at `path`, synchronously: connect, send `request`,
   * read until the other side closes; all within `timeoutMs` (ETIMEDOUT), an answer of at most
   * `maxBytes` (EMSGSIZE).
   */
  unixCall(path: string, request: Buffer, timeoutMs: number, maxBytes: number): Buffer;
  /**
   * ICMP/ICMPv6 echo from `src` to `dst` inside netns `netnsFd` (-1: the home
   * ns), on a libuv pool thread: `count` requests spread evenly over
   * `timeoutMs`, stopping at the first matching reply. Resolves to the number
   * of replies (0 = none within the timeout); rejects with errno errors
   * (EINVAL 'inet_pton', setns, bind EADDRNOTAVAIL, sendto ENETUNREACH...).
   * The fd is dup'ed synchronously: the caller may close it once this returns.
   * `id` (0..65535) is the echo identifier; default: a per-call counter.
   */
  icmpEcho(netnsFd: number, src: string, dst: string, timeoutMs: number, count: number, id?: number): Promise<number>;
  /**
   * A UDP or TCP socket created and bound to `address`:`port` inside netns `netnsFd` (setns
   * on the calling thread around socket() and bind(), then back), returned as an fd the
   * caller owns: non-blocking, close-on-exec; TCP with SO_REUSEADDR and not listening yet.
   * Throws errno errors (setns, socket, bind EADDRINUSE/EADDRNOTAVAIL, inet_pton EINVAL).
   */
  socketInNetns(netnsFd: number, type: 'udp' | 'tcp', address: string, port: number): number;
  /**
   * A bound NETLINK_ROUTE socket (fd, owned by the caller: close it with
   * fs.closeSync) in the netns of `netnsFd` (entered and left inside the call,
   * like withNetns; setns errors are thrown with syscall 'setns'), or in the
   * calling thread's netns without it. 1 MiB receive buffer, NETLINK_CAP_ACK.
   * `protocol` 16 (NETLINK_GENERIC) opens a generic-netlink socket instead,
   * for requests to its controller that rtnlTransact can carry as well.
   */
  rtnlOpen(netnsFd?: number, protocol?: 0 | 16): number;
  /**
   * Sends `request` (one or more netlink messages, each with NLM_F_ACK or a
   * dump) in one send() and reads, on this thread, until each message's seq
   * got its NLMSG_ERROR (ACK or error) or NLMSG_DONE: rtnetlink answers inside
   * the send, so this does not wait on anything. Returns the replies as read
   * (netlink messages back to back; other seqs may be among them). Throws
   * errno errors for the transport only (sendmsg, recvmsg ENOBUFS, ETIMEDOUT
   * after 5 s without an expected reply); the kernel's answers, errors
   * included, are in the replies.
   */
  rtnlTransact(fd: number, request: Buffer): Buffer;
  /**
   * rtnlTransact on a libuv pool thread, for requests the kernel answers only
   * after waiting (a link deleted or moved to another namespace waits for an
   * RCU grace period, tens of milliseconds): the event loop runs meanwhile. Rejects with the same transport
   * errors. `fd` must not be used by anything else until this settles.
   */
  rtnlTransactAsync(fd: number, request: Buffer): Promise<Buffer>;
  /**
   * Runs `ops` in order on one libuv pool thread: with `tmp` and `data`, writes `data` to
   * `tmp` (created with `mode`, default 0600, or truncated) and renames it over `path`;
   * without them, unlinks `path` (a missing file counts as done). Resolves with each
   * operation's errno (0: done); a failure does not stop the operations after it, and a
   * failed write leaves no `tmp` behind. Nothing is fsynced. Throws a TypeError for
   * malformed `ops`; `data` is copied before this returns.
   */
  fileOpsAsync(ops: { path: string; tmp?: string; data?: Buffer; mode?: number }[]): Promise<number[]>;
  /**
   * fd of the netns the process was in when the addon loaded (the "home" ns
   * outermost withNetns calls return to). Owned by the addon: never close it.
   */
  readonly homeNetnsFd: number;
}

declare const native: NsmNative;
export = native;
