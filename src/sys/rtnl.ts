// SPDX-License-Identifier: Apache-2.0
/**
 * One rtnetlink socket per network namespace.
 *
 * A netlink socket is bound to the namespace of the thread that created it,
 * for its whole life. So {@link Rtnl.for} opens the socket inside the target
 * namespace once (a ~3 µs synchronous setns round trip via withNetns) and
 * caches it by namespace identity (dev:inode); every later request for that
 * namespace is a plain sendmsg with no namespace switching.
 *
 * Lifetime: an Rtnl stays open while at least one Netns handle that asked for
 * it is open; it closes when the last of them closes, or on
 * {@link Rtnl.closeAll}. The open socket itself keeps the namespace alive.
 * Requests still pending when the socket closes reject with ECANCELED.
 * The socket does not keep the event loop alive between requests.
 */
import { AttrStream, MessageType as NlMessageType, createRtNetlink, readS32, rt } from 'netlink';
import type { RtNetlinkSocket } from 'netlink';
import { SysError, errnoCode, rethrow, toSysError } from './errors';
import { Netns, hostNetns, sameNetns, withNetns } from './netns';

/** Builds the payload of a request (fixed header struct, then attributes). */
export type RequestBody = (out: AttrStream) => void;

export interface RequestOptions {
  /** NLM_F_* modifier flags (REQUEST and ACK are always added). */
  flags?: number;
  /** What the request is about, for error messages: ifname, address, ... */
  subject?: string;
}

/** Requests one socket has outstanding at most; see Rtnl.request. */
const MAX_IN_FLIGHT = 16;

/** An rtnetlink socket bound to one namespace. */
export class Rtnl {
  private static readonly cache = new Map<string, Rtnl>();

  /** The namespace this socket operates in (the first handle that opened it). */
  readonly ns: Netns;
  private readonly key: string;
  private readonly owners = new Set<Netns>();
  private readonly pending = new Set<(err: Error) => void>();
  private socket: RtNetlinkSocket | undefined;
  /** Requests in flight on the socket, and those waiting for a slot. */
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];

  /**
   * The cached socket for `ns`, opened inside it on first use. EBADF if the
   * handle is closed.
   */
  static for(ns: Netns): Rtnl {
    if (ns.closed) throw new SysError('EBADF', 'socket', { path: ns.path, detail: 'netns handle is closed' });
    const key = `${ns.dev}:${ns.inode}`;
    let rtnl = Rtnl.cache.get(key);
    if (rtnl === undefined) {
      rtnl = new Rtnl(ns, key);
      Rtnl.cache.set(key, rtnl);
    }
    rtnl.adopt(ns);
    return rtnl;
  }

  /** Closes every cached socket (shutdown, tests). */
  static closeAll(): void {
    for (const rtnl of [...Rtnl.cache.values()]) rtnl.close();
  }

  private constructor(ns: Netns, key: string) {
    this.ns = ns;
    this.key = key;
    try {
      this.socket = sameNetns(ns, hostNetns()) ? createRtNetlink() : withNetns(ns, () => createRtNetlink());
    } catch (err) {
      rethrow(err, { syscall: 'socket', path: ns.path });
    }
    // A receive error (e.g. ENOBUFS) may have lost replies: fail what is
    // pending and drop the socket; the next Rtnl.for opens a fresh one.
    // (Without a listener the EventEmitter would crash the process.)
    this.socket.socket.on('error', (err) => this.close(toSysError(err, { syscall: 'recvmsg', path: ns.path }) as Error));
  }

  private adopt(ns: Netns): void {
    if (this.owners.has(ns)) return;
    this.owners.add(ns);
    ns.onClose(() => {
      this.owners.delete(ns);
      if (this.owners.size === 0) this.close();
    });
  }

  get closed(): boolean {
    return this.socket === undefined;
  }

  /**
   * Closes the socket now; pending requests reject with `reason` (default
   * SysError ECANCELED). Later Rtnl.for calls for the namespace open a new one.
   */
  close(reason?: Error): void {
    const socket = this.socket;
    if (socket === undefined) return;
    this.socket = undefined;
    if (Rtnl.cache.get(this.key) === this) Rtnl.cache.delete(this.key);
    socket.socket.close();
    const error = reason ?? new SysError('ECANCELED', 'recvmsg', { path: this.ns.path, detail: 'netlink socket closed' });
    for (const reject of this.pending) reject(error);
    this.pending.clear();
  }

  /**
   * Sends one request and waits for the kernel's answer. Resolves with the
   * payloads of the reply messages (none for a plain ACK; many for a dump).
   * An ERROR reply rejects with SysError, e.g. code 'EEXIST', syscall
   * 'RTM_NEWLINK', path = options.subject.
   */
  async request(type: rt.MessageType, body: RequestBody, options: RequestOptions = {}): Promise<Buffer[]> {
    // The netlink package's native socket cannot take a full send or receive queue (it
    // aborts the process), so a socket never has more than MAX_IN_FLIGHT requests out.
    if (this.inFlight >= MAX_IN_FLIGHT) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.inFlight++;
    try {
      return await this.send(type, body, options);
    } finally {
      this.inFlight--;
      this.waiting.shift()?.();
    }
  }

  private send(type: rt.MessageType, body: RequestBody, options: RequestOptions): Promise<Buffer[]> {
    const syscall = `RTM_${rt.MessageType[type] ?? type}`;
    const socket = this.socket;
    if (socket === undefined) {
      return Promise.reject(new SysError('EBADF', syscall, { path: options.subject, detail: 'netlink socket closed' }));
    }
    const out = new AttrStream();
    body(out);
    return new Promise<Buffer[]>((resolve, reject) => {
      this.pending.add(reject);
      socket.socket
        .request(type, out.bufs, { flags: options.flags ?? 0, checkError: false })
        .then(([messages]) => {
          const payloads: Buffer[] = [];
          for (const msg of messages) {
            if (msg.type !== NlMessageType.ERROR) {
              payloads.push(msg.data);
              continue;
            }
            const errno = readS32.call(msg.data, 0); // struct nlmsgerr.error, host order
            if (errno !== 0) throw new SysError(errnoCode(errno), syscall, { path: options.subject });
          }
          resolve(payloads);
        })
        .catch((err: unknown) => reject(toSysError(err, { syscall, path: options.subject })))
        .finally(() => this.pending.delete(reject));
    });
  }
}
