// SPDX-License-Identifier: Apache-2.0
/**
 * Generic netlink's controller (`nlctrl`), asked over the addon's own netlink socket
 * (rtnlOpen with NETLINK_GENERIC): whether the kernel has a family, without loading the
 * `netlink` package's socket and its native binding, which only the configuration of kernel
 * WireGuard needs (src/sys/wireguard.ts).
 */
import { closeSync } from 'node:fs';
import { eachAttr } from './link';
import { native } from './native';
import { AttrStream, putString } from './netlink-lib';

const NETLINK_GENERIC = 16;
/** <linux/netlink.h>, <linux/genetlink.h> */
const NLMSG_ERROR = 2;
const NLM_F_REQUEST = 1;
const NLM_F_ACK = 4;
const GENL_ID_CTRL = 0x10;
const CTRL_CMD_GETFAMILY = 3;
const CTRL_ATTR_FAMILY_ID = 1;
const CTRL_ATTR_FAMILY_NAME = 2;
/** nlmsghdr, then genlmsghdr */
const NLMSG_HDRLEN = 16;
const GENL_HDRLEN = 4;

const align4 = (n: number): number => (n + 3) & ~3;

/** CTRL_CMD_GETFAMILY for `name`, with NLM_F_ACK (rtnlTransact reads until the ACK or error). */
export function familyRequest(name: string): Buffer {
  const attrs = new AttrStream();
  attrs.push(CTRL_ATTR_FAMILY_NAME, putString(name));
  const body = Buffer.concat([Buffer.alloc(NLMSG_HDRLEN + GENL_HDRLEN), ...attrs.bufs]);
  const buf = Buffer.concat([body, Buffer.alloc(align4(body.length) - body.length)]); // the last attribute padded too
  buf.writeUInt32LE(buf.length, 0);
  buf.writeUInt16LE(GENL_ID_CTRL, 4);
  buf.writeUInt16LE(NLM_F_REQUEST | NLM_F_ACK, 6);
  buf.writeUInt32LE(1, 8); // seq
  buf.writeUInt8(CTRL_CMD_GETFAMILY, NLMSG_HDRLEN);
  buf.writeUInt8(1, NLMSG_HDRLEN + 1); // version
  return buf;
}

/** The family id in the controller's replies; undefined for an error reply (ENOENT: no such family) or none. */
export function familyIdOf(replies: Buffer): number | undefined {
  for (let off = 0; off + NLMSG_HDRLEN <= replies.length; ) {
    const len = replies.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > replies.length) return undefined;
    const type = replies.readUInt16LE(off + 4);
    if (type === NLMSG_ERROR && len >= NLMSG_HDRLEN + 4 && replies.readInt32LE(off + NLMSG_HDRLEN) < 0) return undefined;
    if (type === GENL_ID_CTRL) {
      let id: number | undefined;
      eachAttr(replies, off + NLMSG_HDRLEN + GENL_HDRLEN, off + len, (t, at, end) => {
        if (t === CTRL_ATTR_FAMILY_ID && end - at >= 2) id ??= replies.readUInt16LE(at);
      });
      if (id !== undefined) return id;
    }
    off += align4(len);
  }
  return undefined;
}

/**
 * The id of the generic-netlink family `name`, undefined if the kernel has none (module neither
 * built in nor loadable). Asked by name, which makes the kernel load the family's module on
 * demand; asked from the calling thread's namespace; any failure counts as none.
 */
export async function genlFamilyId(name: string): Promise<number | undefined> {
  let fd: number | undefined;
  try {
    fd = native().rtnlOpen(undefined, NETLINK_GENERIC);
    return familyIdOf(native().rtnlTransact(fd, familyRequest(name)));
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** True if the kernel has the generic-netlink family `name` (its module built in or loaded). */
export async function hasGenlFamily(name: string): Promise<boolean> {
  return (await genlFamilyId(name)) !== undefined;
}
