// SPDX-License-Identifier: Apache-2.0
/**
 * Interface counters (struct rtnl_link_stats64, IFLA_STATS64) over rtnetlink: one RTM_GETLINK
 * dump per namespace, so that reading many interfaces of one namespace costs one request.
 * Counters are as the kernel keeps them for the interface: rx is what the interface received.
 */
import { FlagsGet, readS32, readU16, readU64, rt } from 'netlink';
import { ifinfo, IFLA } from './link';
import type { Rtnl } from './rtnl';

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
// struct rtnl_link_stats64: u64 rx_packets, tx_packets, rx_bytes, tx_bytes, rx_errors, tx_errors, rx_dropped, tx_dropped, ...
const STATS64_MIN_LEN = 8 * 8;

const u64 = (buf: Buffer, at: number): number => Number(readU64.call(buf, at));

/** Parses an RTM_NEWLINK payload for its name and IFLA_STATS64 (zeros when the kernel sent none). */
export function parseLinkStats(payload: Buffer): LinkStats {
  const s: LinkStats = { index: payload.length >= 8 ? readS32.call(payload, 4) : 0, name: '', rxPackets: 0, txPackets: 0, rxBytes: 0, txBytes: 0, rxDropped: 0, txDropped: 0 };
  let at = IFINFOMSG_LEN;
  while (at + 4 <= payload.length) {
    const len = readU16.call(payload, at);
    if (len < 4 || at + len > payload.length) break;
    const type = readU16.call(payload, at + 2) & NLA_TYPE_MASK;
    const data = at + 4;
    if (type === IFLA.IFNAME) {
      const nul = payload.indexOf(0, data);
      s.name = payload.toString('utf8', data, nul < 0 || nul > at + len ? at + len : nul);
    } else if (type === IFLA_STATS64 && len - 4 >= STATS64_MIN_LEN) {
      s.rxPackets = u64(payload, data);
      s.txPackets = u64(payload, data + 8);
      s.rxBytes = u64(payload, data + 16);
      s.txBytes = u64(payload, data + 24);
      s.rxDropped = u64(payload, data + 48);
      s.txDropped = u64(payload, data + 56);
    }
    at += (len + 3) & ~3;
  }
  return s;
}

/** The counters of every link of the rtnetlink socket's namespace, by name. */
export async function listLinkStats(rtnl: Rtnl): Promise<Map<string, LinkStats>> {
  const replies = await rtnl.request(rt.MessageType.GETLINK, (out) => ifinfo(out, 0), { flags: FlagsGet.DUMP });
  const byName = new Map<string, LinkStats>();
  for (const r of replies) {
    const s = parseLinkStats(r);
    byName.set(s.name, s);
  }
  return byName;
}
