// SPDX-License-Identifier: Apache-2.0
/**
 * Policy routing rules (`ip rule`), IPv4 and IPv6: add, delete and list the rules that send
 * traffic matching a source prefix, an IP protocol and port ranges to a routing table, and
 * the table ids a namespace uses (in rules or routes), to pick a free one.
 */
import { FlagsGet, FlagsNew, putU32, putU8, rt } from './netlink-lib';
import { invalidArgument } from './errors';
import { IpFamily, addressFamily, formatIp, parseCidr } from './ip';
import type { RequestBody, Rtnl } from './rtnl';

const FRA = { SRC: 2, PRIORITY: 6, TABLE: 15, IP_PROTO: 22, SPORT_RANGE: 23, DPORT_RANGE: 24 } as const;
const RTA = { DST: 1, OIF: 4, TABLE: 15 } as const;
const FR_ACT_TO_TBL = 1;
const AF_UNSPEC = 0;

export interface PortRange {
  start: number;
  end: number;
}

export interface RuleSpec {
  family: IpFamily;
  /** Source prefix ('172.16.2.0/24'); absent: any source. */
  src?: string;
  /** IP protocol number (6 TCP, 17 UDP); absent: any. */
  ipProto?: number;
  sport?: PortRange;
  dport?: PortRange;
  /** The routing table the rule looks up. */
  table: number;
  /** Rule preference; absent: the kernel picks one (as `ip rule add` without `pref`). */
  priority?: number;
}

export interface RuleInfo extends RuleSpec {
  priority: number;
}

function portRange(r: PortRange, syscall: string): Buffer {
  if (!(Number.isInteger(r.start) && Number.isInteger(r.end) && r.start >= 0 && r.end <= 65535 && r.start <= r.end)) {
    throw invalidArgument(syscall, `${r.start}-${r.end}`, 'not a port range within 0-65535');
  }
  return rt.formatRulePortRange({ start: r.start, end: r.end });
}

function ruleMessage(type: rt.MessageType, spec: RuleSpec): RequestBody {
  const syscall = `RTM_${rt.MessageType[type]}`;
  const src = spec.src === undefined ? undefined : parseCidr(spec.src, syscall);
  if (src && src.family !== spec.family) throw invalidArgument(syscall, spec.src, `not an IPv${spec.family} prefix`);
  if (!(Number.isInteger(spec.table) && spec.table > 0 && spec.table < 2 ** 32)) throw invalidArgument(syscall, String(spec.table), 'not a table id');
  const sport = spec.sport && portRange(spec.sport, syscall);
  const dport = spec.dport && portRange(spec.dport, syscall);
  return (out) => {
    out.emit(
      rt.formatRule({
        family: addressFamily(spec.family),
        srcLen: src?.prefixLen ?? 0,
        table: spec.table < 256 ? spec.table : 0,
        action: FR_ACT_TO_TBL,
      }),
    );
    if (src) out.push(FRA.SRC, src.bytes);
    if (spec.priority !== undefined) out.push(FRA.PRIORITY, putU32(spec.priority));
    out.push(FRA.TABLE, putU32(spec.table));
    if (spec.ipProto !== undefined) out.push(FRA.IP_PROTO, putU8(spec.ipProto));
    if (sport) out.push(FRA.SPORT_RANGE, sport);
    if (dport) out.push(FRA.DPORT_RANGE, dport);
  };
}

function describe(spec: RuleSpec): string {
  const ports = (r: PortRange | undefined) => (r ? (r.start === r.end ? `${r.start}` : `${r.start}-${r.end}`) : undefined);
  return [
    spec.src ? `from ${spec.src}` : 'from all',
    spec.ipProto !== undefined ? `ipproto ${spec.ipProto}` : '',
    spec.sport ? `sport ${ports(spec.sport)}` : '',
    spec.dport ? `dport ${ports(spec.dport)}` : '',
    `table ${spec.table}`,
  ]
    .filter(Boolean)
    .join(' ');
}

/** Adds the rule (EEXIST if the very same rule is there). */
export async function addRule(rtnl: Rtnl, spec: RuleSpec): Promise<void> {
  await rtnl.request(rt.MessageType.NEWRULE, ruleMessage(rt.MessageType.NEWRULE, spec), { flags: FlagsNew.CREATE | FlagsNew.EXCL, subject: describe(spec) });
}

/** Deletes the first rule matching every given field of `spec` (ENOENT if none). */
export async function delRule(rtnl: Rtnl, spec: RuleSpec): Promise<void> {
  await rtnl.request(rt.MessageType.DELRULE, ruleMessage(rt.MessageType.DELRULE, spec), { subject: describe(spec) });
}

/** The rules of the namespace, both families, that look up a table (to-table rules). */
export async function listRules(rtnl: Rtnl): Promise<RuleInfo[]> {
  const replies = await rtnl.request(rt.MessageType.GETRULE, (out) => out.emit(rt.formatRule({ family: AF_UNSPEC })), { flags: FlagsGet.DUMP });
  const result: RuleInfo[] = [];
  for (const payload of replies) {
    const { data, attrs } = rt.parseRuleMessage(payload);
    const family: IpFamily = data.family === addressFamily(6) ? 6 : 4;
    const table = attrs.table ?? data.table ?? 0;
    const rule: RuleInfo = { family, table, priority: attrs.priority ?? 0 };
    if (attrs.src !== undefined) rule.src = `${formatIp(attrs.src)}/${data.srcLen ?? 0}`;
    if (attrs.ipProto !== undefined) rule.ipProto = attrs.ipProto;
    if (attrs.sportRange) rule.sport = { start: attrs.sportRange.start ?? 0, end: attrs.sportRange.end ?? 0 };
    if (attrs.dportRange) rule.dport = { start: attrs.dportRange.start ?? 0, end: attrs.dportRange.end ?? 0 };
    result.push(rule);
  }
  return result;
}

/** Every routing table id the namespace uses, in its routes (both families) or its rules. */
export async function usedTables(rtnl: Rtnl): Promise<Set<number>> {
  const used = new Set<number>();
  const routes = await rtnl.request(rt.MessageType.GETROUTE, (out) => out.emit(rt.formatRoute({ family: AF_UNSPEC })), { flags: FlagsGet.DUMP });
  for (const payload of routes) {
    const { data, attrs } = rt.parseRouteMessage(payload);
    used.add(attrs.table ?? data.table ?? 0);
  }
  for (const r of await listRules(rtnl)) used.add(r.table);
  return used;
}

/** Deletes every route of `table` (both families); the kernel keeps no empty table. */
export async function flushTable(rtnl: Rtnl, table: number): Promise<void> {
  const replies = await rtnl.request(rt.MessageType.GETROUTE, (out) => out.emit(rt.formatRoute({ family: AF_UNSPEC })), { flags: FlagsGet.DUMP });
  for (const payload of replies) {
    const { data, attrs } = rt.parseRouteMessage(payload);
    if ((attrs.table ?? data.table) !== table) continue;
    const family = data.family === addressFamily(6) ? 6 : 4;
    const dst = `${attrs.dst === undefined ? (family === 4 ? '0.0.0.0' : '::') : formatIp(attrs.dst)}/${data.dstLen ?? 0}`;
    await rtnl
      .request(
        rt.MessageType.DELROUTE,
        (out) => {
          out.emit(rt.formatRoute({ family: data.family, dstLen: data.dstLen, table: table < 256 ? table : 0, scope: 255, type: data.type }));
          if (attrs.dst !== undefined) out.push(RTA.DST, attrs.dst);
          if (attrs.oif !== undefined) out.push(RTA.OIF, putU32(attrs.oif));
          if (table >= 256) out.push(RTA.TABLE, putU32(table));
        },
        { subject: dst },
      )
      .catch((err: { code?: string }) => {
        if (err.code !== 'ESRCH') throw err;
      });
  }
}
