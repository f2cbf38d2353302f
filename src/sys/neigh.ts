// SPDX-License-Identifier: Apache-2.0
/**
 * Neighbour (ARP / NDP) entries, one netlink request per call. Static
 * entries let both ends of a point-to-point link talk without waiting for
 * ARP/ND resolution on the first packet.
 */
import { FlagsGet, FlagsNew, rt } from './netlink-lib';
import { IpFamily, addressFamily, formatIp, formatMac, parseIp, parseMac } from './ip';
import type { Rtnl, RtnlRequest } from './rtnl';

const NDA = { DST: 1, LLADDR: 2 } as const;

export interface NeighborSpec {
  /** Link ifindex the neighbour is on. */
  index: number;
  ip: string;
  mac: string;
  /** NUD_PERMANENT (never expires) when true, else NUD_REACHABLE (ages normally). */
  permanent: boolean;
}

export interface NeighborInfo {
  index: number;
  family: IpFamily;
  ip: string;
  mac?: string;
  permanent: boolean;
}

/** The request of {@link replaceNeighbor} (EINVAL, thrown here, for a bad address). */
export function replaceNeighborRequest(spec: NeighborSpec): RtnlRequest {
  const ip = parseIp(spec.ip, 'RTM_NEWNEIGH');
  const mac = parseMac(spec.mac, 'RTM_NEWNEIGH');
  return {
    type: rt.MessageType.NEWNEIGH,
    body: (out) => {
      out.emit(
        rt.formatNeighbor({
          family: addressFamily(ip.family),
          ifindex: spec.index,
          state: spec.permanent ? { permanent: true } : { reachable: true },
        }),
      );
      out.push(NDA.DST, ip.bytes);
      out.push(NDA.LLADDR, mac);
    },
    options: { flags: FlagsNew.CREATE | FlagsNew.REPLACE, subject: spec.ip },
  };
}

/** Adds or replaces the entry for `spec.ip` on `spec.index` (like `ip neigh replace`). */
export async function replaceNeighbor(rtnl: Rtnl, spec: NeighborSpec): Promise<void> {
  const r = replaceNeighborRequest(spec);
  await rtnl.request(r.type, r.body, r.options);
}

/** Deletes the entry for `ip` on link `index`. ENOENT if none. */
export async function delNeighbor(rtnl: Rtnl, index: number, ipText: string): Promise<void> {
  const ip = parseIp(ipText, 'RTM_DELNEIGH');
  await rtnl.request(
    rt.MessageType.DELNEIGH,
    (out) => {
      out.emit(rt.formatNeighbor({ family: addressFamily(ip.family), ifindex: index }));
      out.push(NDA.DST, ip.bytes);
    },
    { subject: ipText },
  );
}

/** Neighbour entries of the namespace, optionally only those on link `index`. */
export async function listNeighbors(rtnl: Rtnl, index?: number): Promise<NeighborInfo[]> {
  const replies = await rtnl.request(rt.MessageType.GETNEIGH, (out) => out.emit(rt.formatNeighbor({})), {
    flags: FlagsGet.DUMP,
  });
  const result: NeighborInfo[] = [];
  for (const payload of replies) {
    const { data, attrs } = rt.parseNeighborMessage(payload);
    if (index !== undefined && data.ifindex !== index) continue;
    if (attrs.dst === undefined || (data.family !== 2 && data.family !== 10)) continue;
    const entry: NeighborInfo = {
      index: data.ifindex ?? 0,
      family: data.family === 2 ? 4 : 6,
      ip: formatIp(attrs.dst),
      permanent: data.state?.permanent === true,
    };
    if (attrs.lladdr !== undefined) entry.mac = formatMac(attrs.lladdr);
    result.push(entry);
  }
  return result;
}
