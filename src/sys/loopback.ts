/**
 * Sets `lo` up in a namespace with one hand-built RTM_NEWLINK, without the `netlink` package:
 * for short-lived processes (`nsm-agent unit start`) whose only link change is this one, and
 * whose start-up would otherwise load the whole rtnetlink codec.
 *
 * `lo` is ifindex 1 in every network namespace (it is the first device a namespace gets).
 */
import { closeSync } from 'node:fs';
import { SysError, errnoCode, rethrow } from './errors';
import { native } from './native';
import type { Netns } from './netns';

const RTM_NEWLINK = 16;
const NLMSG_ERROR = 2;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const IFF_UP = 0x1;
const LOOPBACK_INDEX = 1;
const SEQ = 1;

/** RTM_NEWLINK for ifindex 1: ifi_flags and ifi_change IFF_UP (nlmsghdr 16 bytes + ifinfomsg 16). */
function request(): Buffer {
  const b = Buffer.alloc(32);
  b.writeUInt32LE(32, 0);
  b.writeUInt16LE(RTM_NEWLINK, 4);
  b.writeUInt16LE(NLM_F_REQUEST | NLM_F_ACK, 6);
  b.writeUInt32LE(SEQ, 8);
  b.writeUInt32LE(0, 12);
  // ifinfomsg: family AF_UNSPEC, pad, type 0, index, flags, change
  b.writeInt32LE(LOOPBACK_INDEX, 20);
  b.writeUInt32LE(IFF_UP, 24);
  b.writeUInt32LE(IFF_UP, 28);
  return b;
}

/** The errno of the NLMSG_ERROR answering SEQ (0: the ACK); undefined if there is none. */
export function ackErrno(replies: Buffer): number | undefined {
  for (let off = 0; off + 16 <= replies.length; ) {
    const len = replies.readUInt32LE(off);
    if (len < 16) break;
    const type = replies.readUInt16LE(off + 4);
    const seq = replies.readUInt32LE(off + 8);
    if (type === NLMSG_ERROR && seq === SEQ && off + 20 <= replies.length) return replies.readInt32LE(off + 16);
    off += (len + 3) & ~3;
  }
  return undefined;
}

/** Sets `lo` up in `ns` (a no-op when it is up already). */
export function setLoopbackUp(ns: Netns): void {
  let fd: number;
  try {
    fd = native().rtnlOpen(ns.fd);
  } catch (err) {
    rethrow(err, { path: ns.path });
  }
  try {
    let replies: Buffer;
    try {
      replies = native().rtnlTransact(fd, request());
    } catch (err) {
      rethrow(err, { syscall: 'RTM_NEWLINK', path: 'lo' });
    }
    const errno = ackErrno(replies);
    if (errno === undefined) throw new SysError('EPROTO', 'RTM_NEWLINK', { path: 'lo', detail: 'no answer from rtnetlink' });
    if (errno !== 0) throw new SysError(errnoCode(errno), 'RTM_NEWLINK', { path: 'lo' });
  } finally {
    closeSync(fd);
  }
}
