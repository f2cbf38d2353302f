// SPDX-License-Identifier: Apache-2.0
/**
 * Interface counters (struct rtnl_link_stats64) over rtnetlink, read so that the kernel does
 * only the work the counters need:
 *  - every link of a namespace ({@link listLinkStats}): the counters from an RTM_GETSTATS dump
 *    asking only for IFLA_STATS_LINK_64, joined by ifindex with the links' names, which only
 *    an RTM_GETLINK dump gives (with every other attribute of every link: several times the
 *    kernel's work) and which are therefore kept per namespace while no link changed;
 *  - a few named links ({@link getLinkStats}): one RTM_GETLINK per name, sent together, so
 *    that reading one connection's interfaces does not walk a namespace of a thousand links.
 * Replies are read from the raw buffers, only the attributes used.
 * Counters are as the kernel keeps them for the interface: rx is what the interface received.
 */
import { FlagsGet, putString, putU32, readS32, readU16, readU32, rt, writeU32 } from './netlink-lib';
import { ifinfo, IFLA } from './link';
import { linkChanges, type Rtnl } from './rtnl';

export interface LinkStats {
  index: number;
  name: string;
  rxPackets: number;
  txPackets: number;
  rxBytes: number;
  txBytes: number;
  rxDropped: number;
  txDropped: number;
}

const IFLA_STATS64 = 23;
const IFINFOMSG_LEN = 16;
const NLA_TYPE_MASK = 0x3fff;
const RTEXT_FILTER_SKIP_STATS = 1 << 3;
// struct if_stats_msg: u8 family, u8 pad1, u16 pad2, u32 ifindex, u32 filter_mask
const IF_STATS_MSG_LEN = 12;
const IFLA_STATS_LINK_64 = 1;
const IFLA_STATS_FILTER_LINK_64 = 1 << (IFLA_STATS_LINK_64 - 1);
// struct rtnl_link_stats64: u64 rx_packets, tx_packets, rx_bytes, tx_bytes, rx_errors, tx_errors, rx_dropped, tx_dropped, ...
const STATS64_MIN_LEN = 8 * 8;
/** How long a namespace's link names are used before they are dumped again (see listLinkStats). */
export const LINK_NAMES_MAX_AGE_MS = 60_000;
/** Up to this many names in a namespace are asked for one by one rather than by dumping it. */
const FEW_LINKS = 8;

// The netlink package's readers (host byte order), taken once: its module exports them
// through getters, a cost per call when reading thousands of replies.
const u16: (this: Buffer, at: number) => number = readU16;
const u32: (this: Buffer, at: number) => number = readU32;
const s32: (this: Buffer, at: number) => number = readS32;
const LITTLE_ENDIAN = Buffer.from(new Uint16Array([1]).buffer)[0] === 1;

/** A host-order u64 as a number (exact below 2^53, rounded to the nearest above, as Number(bigint)). */
function u64(buf: Buffer, at: number): number {
  const lo = u32.call(buf, LITTLE_ENDIAN ? at : at + 4);
  const hi = u32.call(buf, LITTLE_ENDIAN ? at + 4 : at);
  return hi * 0x1_0000_0000 + lo;
}

/** The NUL-terminated string in buf[at, end). */
function cString(buf: Buffer, at: number, end: number): string {
  const nul = buf.indexOf(0, at);
  return buf.toString('utf8', at, nul < 0 || nul > end ? end : nul);
}

/** Fills the counters of `s` from a struct rtnl_link_stats64 at buf[at, at + len) (left as they are if short). */
function readStats64(s: LinkStats, buf: Buffer, at: number, len: number): void {
  if (len < STATS64_MIN_LEN) return;
  s.rxPackets = u64(buf, at);
  s.txPackets = u64(buf, at + 8);
  s.rxBytes = u64(buf, at + 16);
  s.txBytes = u64(buf, at + 24);
  s.rxDropped = u64(buf, at + 48);
  s.txDropped = u64(buf, at + 56);
}

const zeroStats = (index: number, name: string): LinkStats => ({ index, name, rxPackets: 0, txPackets: 0, rxBytes: 0, txBytes: 0, rxDropped: 0, txDropped: 0 });

/** Parses an RTM_NEWLINK payload for its name and IFLA_STATS64 (zeros when the kernel sent none). */
export function parseLinkStats(payload: Buffer): LinkStats {
  const s = zeroStats(payload.length >= 8 ? s32.call(payload, 4) : 0, '');
  let at = IFINFOMSG_LEN;
  while (at + 4 <= payload.length) {
    const len = u16.call(payload, at);
    if (len < 4 || at + len > payload.length) break;
    const type = u16.call(payload, at + 2) & NLA_TYPE_MASK;
    if (type === IFLA.IFNAME) s.name = cString(payload, at + 4, at + len);
    else if (type === IFLA_STATS64) readStats64(s, payload, at + 4, len - 4);
    at += (len + 3) & ~3;
  }
  return s;
}

/** The ifindex and name of an RTM_NEWLINK payload (name '' if it has none); attributes after the name are not looked at. */
function parseIndexAndName(payload: Buffer): { index: number; name: string } {
  const index = payload.length >= 8 ? s32.call(payload, 4) : 0;
  let at = IFINFOMSG_LEN;
  while (at + 4 <= payload.length) {
    const len = u16.call(payload, at);
    if (len < 4 || at + len > payload.length) break;
    if ((u16.call(payload, at + 2) & NLA_TYPE_MASK) === IFLA.IFNAME) return { index, name: cString(payload, at + 4, at + len) };
    at += (len + 3) & ~3;
  }
  return { index, name: '' };
}

/** A namespace's link names by ifindex, as of a name dump: when (performance.now()), and linkChanges() then. */
interface LinkNames {
  byIndex: Map<number, string>;
  at: number;
  changes: number;
}

/** The latest link names of each namespace (its socket), for {@link listLinkStats}. */
const namesOf = new WeakMap<Rtnl, LinkNames>();

async function dumpNames(rtnl: Rtnl): Promise<LinkNames> {
  const changes = linkChanges();
  const links = await rtnl.request(
    rt.MessageType.GETLINK,
    (out) => {
      ifinfo(out, 0);
      out.push(IFLA.EXT_MASK, putU32(RTEXT_FILTER_SKIP_STATS));
    },
    { flags: FlagsGet.DUMP },
  );
  const byIndex = new Map<number, string>();
  for (const payload of links) {
    const { index, name } = parseIndexAndName(payload);
    byIndex.set(index, name);
  }
  return { byIndex, at: performance.now(), changes };
}

/** Whether `names` still name the links of the RTM_GETSTATS dump `stats` (see listLinkStats). */
function namesHold(names: LinkNames | undefined, stats: Buffer[]): names is LinkNames {
  if (names === undefined || names.changes !== linkChanges() || performance.now() - names.at > LINK_NAMES_MAX_AGE_MS) return false;
  return stats.every((p) => p.length < IF_STATS_MSG_LEN || names.byIndex.has(s32.call(p, 4)));
}

/**
 * The counters of every link of the rtnetlink socket's namespace, by name.
 *
 * The counters come from an RTM_GETSTATS dump; the names from the namespace's latest name
 * dump, made again when this process has made, renamed, moved or deleted a link since
 * (linkChanges), when the counters show a link the dump does not have, or when it is older
 * than {@link LINK_NAMES_MAX_AGE_MS}. So only a link that another process renamed, or moved
 * in with the ifindex of a link deleted since (a moved link keeps its index when it is free),
 * can show under its former name, until the next dump.
 */
export async function listLinkStats(rtnl: Rtnl): Promise<Map<string, LinkStats>> {
  const stats = await rtnl.request(
    rt.MessageType.GETSTATS,
    (out) => {
      const msg = Buffer.alloc(IF_STATS_MSG_LEN); // ifindex 0: every link
      writeU32.call(msg, IFLA_STATS_FILTER_LINK_64, 8);
      out.emit(msg);
    },
    { flags: FlagsGet.DUMP },
  );
  let names = namesOf.get(rtnl);
  if (!namesHold(names, stats)) {
    names = await dumpNames(rtnl);
    namesOf.set(rtnl, names);
  }
  const byName = new Map<string, LinkStats>();
  for (const payload of stats) {
    if (payload.length < IF_STATS_MSG_LEN) continue;
    const index = s32.call(payload, 4);
    const name = names.byIndex.get(index);
    // A link made after the counters were read has none here: it is left out, as it would
    // have been by a read a moment earlier.
    if (name === undefined) continue;
    const s = zeroStats(index, name);
    let at = IF_STATS_MSG_LEN;
    while (at + 4 <= payload.length) {
      const len = u16.call(payload, at);
      if (len < 4 || at + len > payload.length) break;
      if ((u16.call(payload, at + 2) & NLA_TYPE_MASK) === IFLA_STATS_LINK_64) readStats64(s, payload, at + 4, len - 4);
      at += (len + 3) & ~3;
    }
    byName.set(name, s);
  }
  return byName;
}

/**
 * The counters of the links named `names` in the rtnetlink socket's namespace, by name; a name
 * with no link (or that the kernel refuses) is absent. One request per name, sent together.
 */
export async function getLinkStats(rtnl: Rtnl, names: Iterable<string>): Promise<Map<string, LinkStats>> {
  const asked = [...new Set(names)];
  const replies = rtnl.batch(() =>
    asked.map((name) =>
      rtnl
        .request(
          rt.MessageType.GETLINK,
          (out) => {
            ifinfo(out, 0);
            out.push(IFLA.IFNAME, putString(name));
          },
          { subject: name },
        )
        .catch(() => [] as Buffer[]),
    ),
  );
  const byName = new Map<string, LinkStats>();
  for (const payloads of await Promise.all(replies)) {
    const [reply] = payloads;
    if (reply === undefined) continue;
    const s = parseLinkStats(reply);
    byName.set(s.name, s);
  }
  return byName;
}

/**
 * The counters of the links named `names` in the rtnetlink socket's namespace, by name (a name
 * with no link is absent, the map may hold other links too): asked for one by one when they
 * are few, else read from the namespace's dumps.
 */
export function readLinkStats(rtnl: Rtnl, names: Iterable<string>): Promise<Map<string, LinkStats>> {
  const asked = new Set(names);
  return asked.size <= FEW_LINKS ? getLinkStats(rtnl, asked) : listLinkStats(rtnl);
}
