// SPDX-License-Identifier: Apache-2.0
/**
 * Generic link (network interface) operations over rtnetlink. Each function
 * is exactly one netlink request in the namespace of the given {@link Rtnl}.
 * Links are addressed by ifindex, which is only meaningful within that
 * namespace.
 */
import { AttrStream, FlagsGet, FlagsNew, putString, putU32, readS32, readU16, readU32, rt, writeU32 } from './netlink-lib';
import { randomInt } from 'node:crypto';
import { invalidArgument, SysError } from './errors';
import { formatMac } from './ip';
import type { Netns } from './netns';
import type { Rtnl, RtnlAnswer, RtnlRequest } from './rtnl';

/** What callers usually need to know about a link. */
export interface LinkInfo {
  index: number;
  name: string;
  mtu: number;
  /** Administratively up (IFF_UP). */
  up: boolean;
  /** Lower layer up (IFF_LOWER_UP): for veth, both ends are up. */
  carrier: boolean;
  /** Link-layer address; absent for L3 devices such as tun. */
  mac?: string;
  /** IFLA_INFO_KIND, e.g. 'veth', 'vxlan', 'tun'; absent for physical/lo. */
  kind?: string;
  alias?: string;
}

// Attribute numbers from <linux/if_link.h>, for the parts the netlink package
// leaves as raw buffers.
export const IFLA = {
  ADDRESS: 1,
  IFNAME: 3,
  MTU: 4,
  MASTER: 10,
  LINKINFO: 18,
  IFALIAS: 20,
  NET_NS_FD: 28,
  EXT_MASK: 29,
} as const;
export const IFLA_INFO = { KIND: 1, DATA: 2 } as const;
const RTEXT_FILTER_SKIP_STATS = 1 << 3; // replies without the large stats blocks
const IFNAMSIZ = 16;

/**
 * Throws SysError EINVAL unless `name` is a valid interface name: 1..15 bytes,
 * not '.' or '..', without '/', ':' or whitespace (the kernel's rules).
 */
export function validateIfName(name: string, syscall = 'RTM_NEWLINK'): void {
  const bytes = Buffer.byteLength(name);
  if (bytes === 0 || bytes >= IFNAMSIZ) {
    throw invalidArgument(syscall, name, `interface name must be 1..${IFNAMSIZ - 1} bytes, got ${bytes}`);
  }
  if (name === '.' || name === '..' || /[/:\s]/.test(name)) {
    throw invalidArgument(syscall, name, "interface name must not be '.', '..' or contain '/', ':' or whitespace");
  }
}

/**
 * struct ifinfomsg (AF_UNSPEC) for link `index` (0: by name or new), optionally changing IFF_UP.
 * Written directly rather than through rt.formatLink, which is slow for a message built several
 * times per connect.
 */
export function ifinfo(out: AttrStream, index: number, up?: boolean): void {
  const msg = Buffer.alloc(IFINFOMSG_LEN);
  writeU32.call(msg, index >>> 0, 4);
  if (up !== undefined) {
    writeU32.call(msg, up ? IFF_UP : 0, 8); // ifi_flags
    writeU32.call(msg, IFF_UP, 12); // ifi_change
  }
  out.emit(msg);
}

const IFINFOMSG_LEN = 16; // struct ifinfomsg: family, pad, type, index, flags, change
const IFF_UP = 0x1;
const IFF_LOWER_UP = 0x10000;
const NLA_TYPE_MASK = 0x3fff; // without NLA_F_NESTED / NLA_F_NET_BYTEORDER
/** The NUL-terminated string in buf[at, end). */
function cString(buf: Buffer, at: number, end: number): string {
  const nul = buf.indexOf(0, at);
  return buf.toString('utf8', at, nul < 0 || nul > end ? end : nul);
}

/** Calls fn(type, dataStart, dataEnd) for each netlink attribute in buf[at, end); stops at a malformed one. */
export function eachAttr(buf: Buffer, at: number, end: number, fn: (type: number, start: number, stop: number) => void): void {
  while (at + 4 <= end) {
    const len = readU16.call(buf, at);
    if (len < 4 || at + len > end) return;
    fn(readU16.call(buf, at + 2) & NLA_TYPE_MASK, at + 4, at + len);
    at += (len + 3) & ~3;
  }
}

/**
 * Parses an RTM_NEWLINK payload: the ifinfomsg and the few attributes LinkInfo has, skipping
 * the rest (a veth's reply has some forty): on the connect path, the netlink package's full
 * parse (rt.parseLinkMessage) is too slow.
 * Integers in host byte order, as netlink sends them.
 */
export function parseLinkInfo(payload: Buffer): LinkInfo {
  if (payload.length < IFINFOMSG_LEN) throw new SysError('EPROTO', 'RTM_GETLINK', { detail: `link message of ${payload.length} bytes` });
  const flags = readU32.call(payload, 8);
  const info: LinkInfo = { index: readS32.call(payload, 4), name: '', mtu: 0, up: (flags & IFF_UP) !== 0, carrier: (flags & IFF_LOWER_UP) !== 0 };
  eachAttr(payload, IFINFOMSG_LEN, payload.length, (type, at, end) => {
    switch (type) {
      case IFLA.IFNAME:
        info.name = cString(payload, at, end);
        break;
      case IFLA.MTU:
        if (end - at >= 4) info.mtu = readU32.call(payload, at);
        break;
      case IFLA.ADDRESS:
        if (end > at) info.mac = formatMac(payload.subarray(at, end));
        break;
      case IFLA.IFALIAS: {
        const alias = cString(payload, at, end);
        if (alias !== '') info.alias = alias;
        break;
      }
      case IFLA.LINKINFO:
        eachAttr(payload, at, end, (t, a, e) => {
          if (t === IFLA_INFO.KIND) info.kind = cString(payload, a, e);
        });
        break;
    }
  });
  return info;
}

/** The request of {@link getLink}; {@link linkOf} reads its answer. EINVAL (thrown) for a bad name. */
export function getLinkRequest(nameOrIndex: string | number): RtnlRequest {
  const byName = typeof nameOrIndex === 'string';
  if (byName) validateIfName(nameOrIndex, 'RTM_GETLINK');
  return {
    type: rt.MessageType.GETLINK,
    body: (out) => {
      ifinfo(out, byName ? 0 : nameOrIndex);
      if (byName) out.push(IFLA.IFNAME, putString(nameOrIndex));
      out.push(IFLA.EXT_MASK, putU32(RTEXT_FILTER_SKIP_STATS));
    },
    options: { subject: String(nameOrIndex) },
  };
}

/** The link in the answer to a getLinkRequest; undefined if there is none (ENODEV); other errors throw. */
export function linkOf(answer: RtnlAnswer): LinkInfo | undefined {
  if (answer.payloads === undefined) {
    if (answer.error instanceof SysError && answer.error.code === 'ENODEV') return undefined;
    throw answer.error;
  }
  const [reply] = answer.payloads;
  return reply === undefined ? undefined : parseLinkInfo(reply);
}

/** The link named `name` (or with ifindex `index`), or undefined if none. */
export async function getLink(rtnl: Rtnl, nameOrIndex: string | number): Promise<LinkInfo | undefined> {
  const r = getLinkRequest(nameOrIndex);
  let payloads: Buffer[];
  try {
    payloads = await rtnl.request(r.type, r.body, r.options);
  } catch (error) {
    return linkOf({ error });
  }
  return linkOf({ payloads });
}

/** All links of the namespace. */
export async function listLinks(rtnl: Rtnl): Promise<LinkInfo[]> {
  const replies = await rtnl.request(
    rt.MessageType.GETLINK,
    (out) => {
      ifinfo(out, 0);
      out.push(IFLA.EXT_MASK, putU32(RTEXT_FILTER_SKIP_STATS));
    },
    { flags: FlagsGet.DUMP },
  );
  return replies.map(parseLinkInfo);
}

/**
 * Sends one RTM_NEWLINK that modifies an existing link, addressed by ifindex
 * or (with ifindex 0) by its current name.
 */
function modify(rtnl: Rtnl, link: number | string, up: boolean | undefined, attrs: (out: AttrStream) => void, slow = false): Promise<unknown> {
  const r = modifyRequest(link, up, attrs, slow);
  return rtnl.request(r.type, r.body, r.options);
}

function modifyRequest(link: number | string, up: boolean | undefined, attrs: (out: AttrStream) => void, slow = false): RtnlRequest {
  return {
    type: rt.MessageType.NEWLINK,
    body: (out) => {
      ifinfo(out, typeof link === 'number' ? link : 0, up);
      if (typeof link === 'string') out.push(IFLA.IFNAME, putString(link));
      attrs(out);
    },
    options: { subject: String(link), slow },
  };
}

/** The request of {@link setLinkUp}. */
export function setLinkUpRequest(link: number | string, up: boolean): RtnlRequest {
  if (typeof link === 'string') validateIfName(link);
  return modifyRequest(link, up, () => {});
}

/** Sets the link (ifindex, or current name) administratively up or down. */
export async function setLinkUp(rtnl: Rtnl, link: number | string, up: boolean): Promise<void> {
  const r = setLinkUpRequest(link, up);
  await rtnl.request(r.type, r.body, r.options);
}

export async function setMtu(rtnl: Rtnl, index: number, mtu: number): Promise<void> {
  if (!Number.isInteger(mtu) || mtu <= 0) throw invalidArgument('RTM_NEWLINK', String(index), `bad MTU ${mtu}`);
  await modify(rtnl, index, undefined, (out) => out.push(IFLA.MTU, putU32(mtu)));
}

/**
 * Renames the link. Older kernels refuse (EBUSY) while the link is up (the
 * 6.18 test hosts allow it); set it down first to be portable.
 */
export async function renameLink(rtnl: Rtnl, index: number, newName: string): Promise<void> {
  validateIfName(newName);
  await modify(rtnl, index, undefined, (out) => out.push(IFLA.IFNAME, putString(newName)));
}

/**
 * Renames the link, setting its MTU (when > 0) and raising it (`up`) in the same request: the
 * kernel renames before it applies the flags, so a link that is down is renamed and raised in
 * one message. `slow` as for {@link Rtnl.request}; `subject` names the link in errors.
 */
export async function renameLinkWith(
  rtnl: Rtnl,
  index: number,
  newName: string,
  options: { mtu?: number; up?: boolean; slow?: boolean; subject?: string } = {},
): Promise<void> {
  validateIfName(newName);
  const { mtu, up, slow = false, subject = String(index) } = options;
  await rtnl.request(
    rt.MessageType.NEWLINK,
    (out) => {
      ifinfo(out, index, up ? true : undefined);
      if (mtu !== undefined && mtu > 0) out.push(IFLA.MTU, putU32(mtu));
      out.push(IFLA.IFNAME, putString(newName));
    },
    { subject, slow },
  );
}

/**
 * Moves the link into `target` (optionally renaming it in the same request).
 * The link gets a new ifindex there if its old one is taken; look it up with
 * getLink on Rtnl.for(target). Moving takes the link down.
 */
export async function moveLink(rtnl: Rtnl, index: number, target: Netns, newName?: string): Promise<void> {
  if (newName !== undefined) validateIfName(newName);
  // slow: the kernel waits for an RCU barrier before it answers (see Rtnl)
  await modify(
    rtnl,
    index,
    undefined,
    (out) => {
      out.push(IFLA.NET_NS_FD, putU32(target.fd));
      if (newName !== undefined) out.push(IFLA.IFNAME, putString(newName));
    },
    true,
  );
}

/**
 * Deletes the link (for veth: both ends). ENODEV if there is none with that index.
 *
 * The kernel answers a DELLINK only after an RCU barrier, one at a time per namespace (the
 * slow lane, see Rtnl), so many connections closed at once would take long to tear down one
 * by one. So deletions in one namespace asked for while one is in flight are coalesced: the
 * next batch gets a fresh random interface group (SETLINK IFLA_GROUP, no barrier) and goes in
 * one DELLINK of that group, which the kernel unregisters together, behind one barrier (as
 * `ip link del group N` does). If the kernel refuses the group delete (a link kind it cannot delete that way), the
 * batch's links are deleted one by one, as a single deletion is.
 */
export function deleteLink(rtnl: Rtnl, index: number): Promise<void> {
  let deleter = deleters.get(rtnl);
  if (deleter === undefined) deleters.set(rtnl, (deleter = new LinkDeleter(rtnl)));
  return deleter.delete(index);
}

const IFLA_GROUP = 27;
const deleters = new WeakMap<Rtnl, LinkDeleter>();

interface PendingDelete {
  index: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** The deletions of one namespace's socket: one in flight, those asked for meanwhile in the next batch. */
class LinkDeleter {
  private queued: PendingDelete[] = [];
  private running = false;

  constructor(private readonly rtnl: Rtnl) {}

  delete(index: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queued.push({ index, resolve, reject });
      if (!this.running) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.queued.length > 0) {
        const batch = this.queued.splice(0);
        if (batch.length === 1) await this.one(batch[0] as PendingDelete);
        else await this.many(batch);
      }
    } finally {
      this.running = false;
    }
  }

  private async one(d: PendingDelete): Promise<void> {
    try {
      // slow: the kernel waits for RCU while it unregisters the link (see Rtnl)
      await this.rtnl.request(rt.MessageType.DELLINK, (out) => ifinfo(out, d.index), { subject: String(d.index), slow: true });
      d.resolve();
    } catch (err) {
      d.reject(err);
    }
  }

  private async many(batch: PendingDelete[]): Promise<void> {
    const group = 1 + randomInt(0x7ffffffe); // never 0, the default group; random: other agents batch too
    const indexes = [...new Set(batch.map((d) => d.index))];
    let answers: RtnlAnswer[];
    try {
      answers = this.rtnl.transactNow(indexes.map((i) => modifyRequest(i, undefined, (out) => out.push(IFLA_GROUP, putU32(group)))));
    } catch (err) {
      for (const d of batch) d.reject(err);
      return;
    }
    const failed = new Map<number, unknown>();
    indexes.forEach((index, i) => {
      const answer = answers[i];
      if (answer?.payloads === undefined) failed.set(index, answer?.error); // e.g. ENODEV: not there
    });
    const grouped = batch.filter((d) => !failed.has(d.index));
    for (const d of batch) if (failed.has(d.index)) d.reject(failed.get(d.index));
    if (grouped.length === 0) return;
    try {
      await this.rtnl.request(
        rt.MessageType.DELLINK,
        (out) => {
          ifinfo(out, 0);
          out.push(IFLA_GROUP, putU32(group));
        },
        { subject: `group ${group}`, slow: true },
      );
    } catch (err) {
      // ENODEV: none left in the group, someone else deleted them meanwhile: gone, as asked.
      if (!(err instanceof SysError && err.code === 'ENODEV')) {
        for (const d of grouped) await this.one(d);
        return;
      }
    }
    for (const d of grouped) d.resolve();
  }
}

/** Sets IFLA_IFALIAS (free text, < 256 bytes); '' removes it. */
export async function setLinkAlias(rtnl: Rtnl, index: number, alias: string): Promise<void> {
  if (Buffer.byteLength(alias) >= 256) throw invalidArgument('RTM_NEWLINK', String(index), 'alias must be < 256 bytes');
  await modify(rtnl, index, undefined, (out) => out.push(IFLA.IFALIAS, Buffer.from(alias)));
}

/** Creates a bridge (up) in the namespace of `rtnl`. */
export async function createBridge(rtnl: Rtnl, name: string): Promise<LinkInfo> {
  validateIfName(name);
  await rtnl.request(
    rt.MessageType.NEWLINK,
    (out) => {
      ifinfo(out, 0, true);
      out.push(IFLA.IFNAME, putString(name));
      out.push(IFLA.LINKINFO, (info) => info.push(IFLA_INFO.KIND, putString('bridge')));
    },
    { flags: FlagsNew.CREATE | FlagsNew.EXCL, subject: name },
  );
  const info = await getLink(rtnl, name);
  if (info === undefined) throw new SysError('ENODEV', 'RTM_GETLINK', { path: name, detail: 'bridge vanished after creation' });
  return info;
}

/** Enslaves the link to a bridge (IFLA_MASTER); master 0 releases it. */
export async function setMaster(rtnl: Rtnl, index: number, master: number): Promise<void> {
  await modify(rtnl, index, undefined, (out) => out.push(IFLA.MASTER, putU32(master)));
}

/** The request of {@link setMaster}, setting the link up as well (a bridge port that forwards). */
export function setMasterUpRequest(index: number, master: number): RtnlRequest {
  return modifyRequest(index, true, (out) => out.push(IFLA.MASTER, putU32(master)));
}
