// SPDX-License-Identifier: Apache-2.0
/**
 * Routes (IPv4 and IPv6), one netlink request per call. replaceRoute is
 * idempotent (NLM_F_CREATE|NLM_F_REPLACE, like `ip route replace`).
 */
import { FlagsGet, FlagsNew, putU32, readU32, rt, writeU32 } from './netlink-lib';
import { invalidArgument } from './errors';
import { IpFamily, IpPrefix, addressFamily, formatIp, parseCidr, parseIp } from './ip';
import type { RequestBody, Rtnl, RtnlRequest } from './rtnl';

const RTA = { DST: 1, OIF: 4, GATEWAY: 5, PRIORITY: 6, PREFSRC: 7, TABLE: 15 } as const;
const RTNH_F_ONLINK = 4;
const RT_TABLE_MAIN = 254;
const SCOPES = { universe: 0, link: 253, host: 254 } as const;

export type RouteScope = keyof typeof SCOPES;

export interface RouteSpec {
  /** Destination prefix: '10.0.0.0/24', 'fd00::/64', '0.0.0.0/0', '::/0'. */
  dst: string;
  /** Output link ifindex. */
  index: number;
  /** Gateway address (same family as dst). */
  via?: string;
  /** Gateway is directly on the link even if no address covers it (RTNH_F_ONLINK). */
  onlink?: boolean;
  /** Default: 'universe' with a gateway or for IPv6, otherwise 'link' (as iproute2). */
  scope?: RouteScope;
  /** Routing table id; default main (254). */
  table?: number;
  /** Preferred source address. */
  src?: string;
  /** Route metric/priority. */
  metric?: number;
}

export interface RouteInfo {
  family: IpFamily;
  /** CIDR; '0.0.0.0/0' / '::/0' for defaults. */
  dst: string;
  index?: number;
  via?: string;
  table: number;
  scope: number;
  onlink: boolean;
  src?: string;
  metric?: number;
}

function routeMessage(type: rt.MessageType, spec: Partial<RouteSpec> & RouteSelector, forDelete: boolean): RequestBody {
  const syscall = `RTM_${rt.MessageType[type]}`;
  const dst: IpPrefix = parseCidr(spec.dst, syscall);
  const via = spec.via === undefined ? undefined : parseIp(spec.via, syscall);
  if (via !== undefined && via.family !== dst.family) {
    throw invalidArgument(syscall, spec.dst, `gateway ${spec.via} is not the same address family`);
  }
  const src = spec.src === undefined ? undefined : parseIp(spec.src, syscall);
  const table = spec.table ?? RT_TABLE_MAIN;
  const scope = forDelete
    ? 255 // RT_SCOPE_NOWHERE: match a route of any scope
    : SCOPES[spec.scope ?? (via !== undefined || dst.family === 6 ? 'universe' : 'link')];
  return (out) => {
    const header = rt.formatRoute({
      family: addressFamily(dst.family),
      dstLen: dst.prefixLen,
      table: table < 256 ? table : 0,
      protocol: forDelete ? undefined : rt.RouteProtocol.STATIC,
      scope,
      type: rt.RouteType.UNICAST,
    });
    // rtm_flags (u32 at offset 8, host order) carries RTNH_F_ONLINK for a
    // single-path route; the struct formatter only knows the RTM_F_* names.
    if (spec.onlink === true) writeU32.call(header, RTNH_F_ONLINK, 8);
    out.emit(header);
    if (dst.prefixLen > 0) out.push(RTA.DST, dst.bytes);
    if (spec.index !== undefined) out.push(RTA.OIF, putU32(spec.index));
    if (via !== undefined) out.push(RTA.GATEWAY, via.bytes);
    if (src !== undefined) out.push(RTA.PREFSRC, src.bytes);
    if (spec.metric !== undefined) out.push(RTA.PRIORITY, putU32(spec.metric));
    if (table >= 256) out.push(RTA.TABLE, putU32(table));
  };
}

/** The request of {@link replaceRoute} (EINVAL, thrown here, for a bad spec). */
export function replaceRouteRequest(spec: RouteSpec): RtnlRequest {
  return {
    type: rt.MessageType.NEWROUTE,
    body: routeMessage(rt.MessageType.NEWROUTE, spec, false),
    options: { flags: FlagsNew.CREATE | FlagsNew.REPLACE, subject: spec.dst },
  };
}

/** Adds or replaces the route to `spec.dst`. */
export async function replaceRoute(rtnl: Rtnl, spec: RouteSpec): Promise<void> {
  const r = replaceRouteRequest(spec);
  await rtnl.request(r.type, r.body, r.options);
}

export interface RouteSelector {
  dst: string;
  index?: number;
  via?: string;
  table?: number;
}

/** Deletes the route matching `sel` (any scope/protocol). ESRCH if none. */
export async function delRoute(rtnl: Rtnl, sel: RouteSelector): Promise<void> {
  await rtnl.request(rt.MessageType.DELROUTE, routeMessage(rt.MessageType.DELROUTE, sel, true), { subject: sel.dst });
}

/** Routes of one family in `table` (default main). */
export async function listRoutes(rtnl: Rtnl, family: IpFamily, table = RT_TABLE_MAIN): Promise<RouteInfo[]> {
  const replies = await rtnl.request(
    rt.MessageType.GETROUTE,
    (out) => out.emit(rt.formatRoute({ family: addressFamily(family) })),
    { flags: FlagsGet.DUMP },
  );
  const result: RouteInfo[] = [];
  for (const payload of replies) {
    const { data, attrs } = rt.parseRouteMessage(payload);
    const routeTable = attrs.table ?? data.table ?? 0;
    if (routeTable !== table) continue;
    const route: RouteInfo = {
      family,
      dst: `${attrs.dst === undefined ? (family === 4 ? '0.0.0.0' : '::') : formatIp(attrs.dst)}/${data.dstLen ?? 0}`,
      table: routeTable,
      scope: typeof data.scope === 'number' ? data.scope : rt.RouteScope[data.scope ?? 'UNIVERSE'],
      onlink: (readU32.call(payload, 8) & RTNH_F_ONLINK) !== 0,
    };
    if (attrs.oif !== undefined) route.index = attrs.oif;
    if (attrs.gateway !== undefined) route.via = formatIp(attrs.gateway);
    if (attrs.prefsrc !== undefined) route.src = formatIp(attrs.prefsrc);
    if (attrs.priority !== undefined) route.metric = attrs.priority;
    result.push(route);
  }
  return result;
}
