// SPDX-License-Identifier: Apache-2.0
// Over 400 lines: one class for a socket's whole life (open, batch, transactNow, the slow path, settling).
/**
 * One rtnetlink socket per network namespace.
 *
 * A netlink socket is bound to the namespace of the thread that created it,
 * for its whole life. So {@link Rtnl.for} opens the socket inside the target
 * namespace once (the addon's rtnlOpen enters and leaves it in one call) and
 * caches it by namespace identity (dev:inode); every later request for that
 * namespace is a plain send with no namespace switching.
 *
 * Requests are synchronous transactions (native rtnlTransact): rtnetlink
 * handles a request inside the send that carries it, so the answer is
 * already queued when the send returns and is read at once, on this thread,
 * without an event-loop round trip (the `netlink` package's socket spends
 * promises, callbacks and parsing on each request, which the connect path
 * cannot afford). {@link Rtnl.batch} sends several requests in one send. The
 * promises settle one event-loop turn later (see transact). Requests of one
 * socket are therefore handled in the order they are made, also across
 * sockets. Requests the kernel makes wait (`slow`: a link deleted or moved to
 * another namespace, an RCU barrier each) would block the event loop that
 * long, every held connection's refresh and check and every other call with it; they go to a
 * second socket of the namespace, one at a time, from a libuv pool thread (native
 * rtnlTransactAsync), and are ordered only among themselves: a caller that needs one done
 * before its next request awaits it, as always.
 *
 * Lifetime: an Rtnl stays open while at least one Netns handle that asked for
 * it is open, and {@link Rtnl.lingerMs} after the last of them closes (a handle to the same
 * namespace asking meanwhile takes it over), or until {@link Rtnl.closeAll}: opening a socket
 * inside a namespace (two setns and a socket) would otherwise be paid twice per connect when
 * clients connect and disconnect in turn.
 * The open socket itself keeps the namespace alive, so a deleted namespace outlives its
 * last handle by up to the linger; a namespace made again under the same name is another
 * namespace (another inode) and gets its own socket.
 * A request on a closed Rtnl rejects with EBADF. The socket and the linger timer do not keep
 * the event loop alive.
 */
import { closeSync } from 'node:fs';
import * as nl from './netlink-lib';
import { AttrStream, rt } from './netlink-lib';
import { SysError, errnoCode, rethrow, toSysError } from './errors';
import { native } from './native';
import { Netns, hostNetns, sameNetns } from './netns';

/** Builds the payload of a request (fixed header struct, then attributes). */
export type RequestBody = (out: AttrStream) => void;

/** One request, described: what {@link Rtnl.request} takes, as a value (for {@link Rtnl.transactNow}). */
export interface RtnlRequest {
  type: rt.MessageType;
  body: RequestBody;
  options?: RequestOptions;
}

/**
 * A request's outcome from {@link Rtnl.transactNow}: the reply payloads, or the error its
 * promise would have rejected with (SysError; whatever a body threw).
 */
export type RtnlAnswer = { payloads: Buffer[]; error?: undefined } | { payloads?: undefined; error: unknown };

export interface RequestOptions {
  /** NLM_F_* modifier flags (REQUEST and ACK are always added). */
  flags?: number;
  /** What the request is about, for error messages: ifname, address, ... */
  subject?: string;
  /**
   * The kernel answers only after waiting (a link deleted, or moved to another namespace: an
   * RCU barrier): sent on this namespace's second socket from a libuv pool thread,
   * one at a time, so the event loop runs meanwhile. Never part of a batch.
   */
  slow?: boolean;
}

const NLMSG_HDRLEN = 16;
const NLMSG_NOOP = 1;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLM_F_REQUEST = 1;
const NLM_F_ACK = 4;
const align4 = (n: number) => (n + 3) & ~3;
// The netlink package's host-order readers and writers, taken once: its module exports them
// through getters, a cost per call when reading a dump of thousands of messages.
const readS32: (this: Buffer, at: number) => number = nl.readS32;
const readU16: (this: Buffer, at: number) => number = nl.readU16;
const readU32: (this: Buffer, at: number) => number = nl.readU32;
const writeU16: (this: Buffer, value: number, at: number) => number = nl.writeU16;
const writeU32: (this: Buffer, value: number, at: number) => number = nl.writeU32;

/** Requests that may make, change (rename, move) or delete a link. */
const LINK_CHANGES = new Set<number>([rt.MessageType.NEWLINK, rt.MessageType.DELLINK, rt.MessageType.SETLINK]);
let linkChangesSent = 0;

/**
 * Counts the requests that may make, rename, move or delete a link, on any socket of this
 * process, when they are sent and again when they are answered (or failed): what was learnt
 * about links (their names by ifindex) before a change was answered holds while this stays
 * the same.
 */
export function linkChanges(): number {
  return linkChangesSent;
}

interface Sent {
  q: Queued;
  seq: number;
  syscall: string;
  payloads: Buffer[];
  errno?: number;
  done: boolean;
}

interface Queued {
  type: rt.MessageType;
  body: RequestBody;
  options: RequestOptions;
  resolve: (payloads: Buffer[]) => void;
  reject: (err: unknown) => void;
}

/** An rtnetlink socket bound to one namespace. */
export class Rtnl {
  private static readonly cache = new Map<string, Rtnl>();
  /** How long a socket stays open after its namespace's last handle closed (0: closes at once). */
  static lingerMs = 2_000;

  /** The namespace this socket operates in (the first handle that opened it). */
  readonly ns: Netns;
  private readonly key: string;
  private readonly owners = new Set<Netns>();
  private fd: number | undefined;
  private seq = 1;
  /** Requests made inside batch(), sent when it returns. */
  private corked: Queued[] | undefined;
  /** The socket of `slow` requests (opened on first use), and the tail of their queue. */
  private slowFd: number | undefined;
  private slowTail: Promise<void> = Promise.resolve();
  private slowBusy = 0;
  /** Set while no handle uses this socket: closes it when it fires. */
  private lingering: NodeJS.Timeout | undefined;

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
    this.fd = this.open();
  }

  /**
   * A new socket in this namespace, entered through a handle that is open now: the handle that
   * first opened this Rtnl may be closed since (other owners keep it), and the slow socket is
   * opened later, on first use.
   */
  private open(): number {
    let ns = this.ns;
    if (ns.closed) for (const owner of this.owners) if (!owner.closed) ns = owner;
    // Lingering with no handle open (a caller kept the Rtnl past its handle): the fd number
    // may belong to something else by now, so it must not be entered.
    if (ns.closed) throw new SysError('EBADF', 'socket', { path: ns.path, detail: 'netns handle is closed' });
    try {
      // The addon enters and leaves the namespace itself: no JS runs inside it.
      return sameNetns(ns, hostNetns()) ? native().rtnlOpen() : native().rtnlOpen(ns.fd);
    } catch (err) {
      rethrow(err, { syscall: 'socket', path: ns.path });
    }
  }

  private adopt(ns: Netns): void {
    if (this.owners.has(ns)) return;
    if (this.lingering !== undefined) clearTimeout(this.lingering);
    this.lingering = undefined;
    this.owners.add(ns);
    ns.onClose(() => {
      this.owners.delete(ns);
      if (this.owners.size === 0 && this.fd !== undefined) this.linger();
    });
  }

  private linger(): void {
    if (Rtnl.lingerMs <= 0) return this.close();
    this.lingering = setTimeout(() => this.close(), Rtnl.lingerMs);
    this.lingering.unref();
  }

  get closed(): boolean {
    return this.fd === undefined;
  }

  /** Closes the socket now. Later Rtnl.for calls for the namespace open a new one. */
  close(): void {
    const fd = this.fd;
    if (fd === undefined) return;
    this.fd = undefined;
    if (this.lingering !== undefined) clearTimeout(this.lingering);
    this.lingering = undefined;
    if (Rtnl.cache.get(this.key) === this) Rtnl.cache.delete(this.key);
    closeSync(fd);
    if (this.slowBusy === 0) this.closeSlow(); // else when the last slow request is done
  }

  private closeSlow(): void {
    const fd = this.slowFd;
    this.slowFd = undefined;
    if (fd !== undefined) closeSync(fd);
  }

  /**
   * Sends one request and returns the kernel's answer: the payloads of the
   * reply messages (none for a plain ACK; many for a dump). An ERROR reply
   * rejects with SysError, e.g. code 'EEXIST', syscall 'RTM_NEWLINK',
   * path = options.subject. The request is done (or failed) when this
   * returns; only inside batch() is it sent later, when batch() returns.
   */
  request(type: rt.MessageType, body: RequestBody, options: RequestOptions = {}): Promise<Buffer[]> {
    return new Promise<Buffer[]>((resolve, reject) => {
      const q: Queued = { type, body, options, resolve, reject };
      if (options.slow) this.transactSlow(q);
      else if (this.corked) this.corked.push(q);
      else this.transact([q]);
    });
  }

  /**
   * Runs `fn`; the requests made on this socket while it runs (e.g. an
   * address, a route and a neighbour, through the functions of this
   * directory) are sent together in one send when it returns, and each
   * request's promise settles then, in order. Nested calls join the outer batch.
   */
  batch<T>(fn: () => T): T {
    if (this.corked) return fn();
    const queued: Queued[] = [];
    this.corked = queued;
    try {
      return fn();
    } finally {
      this.corked = undefined;
      if (queued.length) this.transact(queued);
    }
  }

  /**
   * Sends the requests in one send and returns each one's outcome at once, in order, with no
   * promise and no event-loop turn: for a caller that builds its next requests from these
   * answers in the same stretch of code (the local vWire, see mechanisms/kernel/vwire.ts).
   * Such a caller should let the loop turn before it goes on to other work, as the promise
   * API does (see settle). A failed transport fails every request (and closes the socket, as
   * for request()). Not for `slow` requests (they would block the loop) and not inside
   * batch(): both throw.
   */
  transactNow(reqs: readonly RtnlRequest[]): RtnlAnswer[] {
    if (this.corked) throw new Error('Rtnl.transactNow inside batch()');
    const answers: RtnlAnswer[] = [];
    const queued = reqs.map((r, i): Queued => {
      if (r.options?.slow) throw new Error('Rtnl.transactNow: slow requests must go through request()');
      return {
        type: r.type,
        body: r.body,
        options: r.options ?? {},
        resolve: (payloads) => (answers[i] = { payloads }),
        reject: (error) => (answers[i] = { error }),
      };
    });
    this.transact(queued, true);
    return answers;
  }

  /** One slow request: queued behind the previous ones, sent from the pool, settled like any. */
  private transactSlow(q: Queued): void {
    this.slowBusy++;
    const run = async (): Promise<void> => {
      const { sent, request } = this.encode([q], this.fd);
      if (request === undefined) return;
      let replies: Buffer;
      try {
        this.slowFd ??= this.open();
        replies = await native().rtnlTransactAsync(this.slowFd, request);
      } catch (err) {
        const first = sent[0];
        const error = toSysError(err, { syscall: first?.syscall, path: first?.q.options.subject });
        if (LINK_CHANGES.has(q.type)) linkChangesSent++;
        this.closeSlow(); // a failed transport: the next slow request opens a fresh socket
        for (const s of sent) s.q.reject(error);
        return;
      }
      this.settle(sent, replies);
    };
    this.slowTail = this.slowTail.then(run).finally(() => {
      if (--this.slowBusy === 0 && this.fd === undefined) this.closeSlow();
    });
  }

  /** Sends `reqs` in one send; their promises settle one loop turn later, or before it returns if `now`. */
  private transact(reqs: Queued[], now = false): void {
    const fd = this.fd;
    const { sent, request } = this.encode(reqs, fd);
    if (fd === undefined || request === undefined) return;

    let replies: Buffer;
    try {
      replies = native().rtnlTransact(fd, request);
    } catch (err) {
      // The transport failed (e.g. ENOBUFS: replies were dropped): fail the batch and drop
      // the socket; the next Rtnl.for opens a fresh one.
      const first = sent[0];
      const error = toSysError(err, { syscall: first?.syscall, path: first?.q.options.subject });
      this.close();
      const fail = () => {
        for (const s of sent) s.q.reject(error);
      };
      if (now) fail();
      else setImmediate(fail);
      return;
    }
    this.settle(sent, replies, now);
  }

  /**
   * The requests as netlink messages (undefined: none to send); requests that cannot be sent
   * (`fd` undefined: this socket is closed; a body that throws) are rejected here.
   */
  private encode(reqs: Queued[], fd: number | undefined): { sent: Sent[]; request?: Buffer } {
    const sent: Sent[] = [];
    const bufs: Buffer[] = [];
    for (const q of reqs) {
      const syscall = `RTM_${rt.MessageType[q.type] ?? q.type}`;
      if (fd === undefined) {
        q.reject(new SysError('EBADF', syscall, { path: q.options.subject, detail: 'netlink socket closed' }));
        continue;
      }
      let payload: Buffer;
      try {
        const out = new AttrStream();
        q.body(out);
        payload = Buffer.concat(out.bufs);
      } catch (err) {
        q.reject(err);
        continue;
      }
      if (LINK_CHANGES.has(q.type)) linkChangesSent++;
      const seq = this.seq;
      this.seq = (this.seq % 0xffffffff) + 1;
      const len = NLMSG_HDRLEN + payload.length;
      const hdr = Buffer.alloc(NLMSG_HDRLEN);
      writeU32.call(hdr, len, 0);
      writeU16.call(hdr, q.type, 4);
      writeU16.call(hdr, NLM_F_REQUEST | NLM_F_ACK | (q.options.flags ?? 0), 6);
      writeU32.call(hdr, seq, 8);
      bufs.push(hdr, payload);
      if (len !== align4(len)) bufs.push(Buffer.alloc(align4(len) - len));
      sent.push({ q, seq, syscall, payloads: [], done: false });
    }
    return { sent, ...(sent.length ? { request: Buffer.concat(bufs) } : {}) };
  }

  /** Matches the replies to the requests by seq and settles each (one loop turn later, unless `now`). */
  private settle(sent: Sent[], replies: Buffer, now = false): void {
    for (const s of sent) if (LINK_CHANGES.has(s.q.type)) linkChangesSent++;
    const bySeq = new Map(sent.map((s) => [s.seq, s]));
    for (let off = 0; off + NLMSG_HDRLEN <= replies.length; ) {
      const len = readU32.call(replies, off);
      if (len < NLMSG_HDRLEN || off + len > replies.length) break;
      const type = readU16.call(replies, off + 4);
      const s = bySeq.get(readU32.call(replies, off + 8));
      const payload = replies.subarray(off + NLMSG_HDRLEN, off + len);
      off += align4(len);
      if (s === undefined || s.done || type === NLMSG_NOOP) continue;
      if (type === NLMSG_ERROR || type === NLMSG_DONE) {
        // struct nlmsgerr.error (host order); a DONE carries the dump's error the same way
        s.errno = payload.length >= 4 ? readS32.call(payload, 0) : 0;
        s.done = true;
      } else {
        s.payloads.push(payload);
      }
    }
    // Settled from the event loop's check phase, not right away: the work is done, but callers
    // continue one loop turn later, so that many connections in progress at once take turns
    // with the rest of the agent's I/O (answers written, new calls read) instead of running
    // to their ends in one stretch of microtasks and answering all at once (200 concurrent
    // local connects: every answer came at the end, p50 = the whole batch). One turn of an
    // idle loop costs microseconds.
    const finish = () => {
      for (const s of sent) {
        if (s.errno) s.q.reject(new SysError(errnoCode(s.errno), s.syscall, { path: s.q.options.subject }));
        else if (!s.done) s.q.reject(new SysError('EPROTO', s.syscall, { path: s.q.options.subject, detail: 'no answer from the kernel' }));
        else s.q.resolve(s.payloads);
      }
    };
    if (now) finish();
    else setImmediate(finish);
  }
}
