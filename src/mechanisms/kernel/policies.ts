/**
 * Policy routes (the IP context's `policies`, NSM's PolicyRoute) as kernel state, and the
 * difference between what a connection has and what it should have, as sdk-kernel's iprule
 * element keys them: one policy is one `ip rule` (from, proto, sport, dport) looking up a
 * table of its own that holds its routes (a default route through the interface when it
 * lists none). Policies are keyed by `dst_port;src_port;from;proto`: a refresh that keeps a
 * key keeps its rule and table (only the routes inside change), so no other policy flaps.
 */
import type { PolicyRoute } from '../../api';
import { AgentError } from '../../core/errors';
import { formatPrefix, parseIp, parseNetwork } from '../../networkservice/ipam/cidr';

export interface PortRange {
  start: number;
  end: number;
}

/** A route of a policy table: to `dst` through the interface, via `via` (on-link) if given. */
export interface TableRoute {
  dst: string;
  via?: string;
}

/** One policy as the kernel gets it (the table id is chosen when it is applied). */
export interface PolicySpec {
  key: string;
  family: 4 | 6;
  src?: string;
  ipProto?: number;
  sport?: PortRange;
  dport?: PortRange;
  routes: TableRoute[];
}

/** A policy in the kernel: its spec and the table it got. */
export interface AppliedPolicy extends PolicySpec {
  table: number;
}

export function policyKey(p: PolicyRoute): string {
  return `${p.dst_port ?? ''};${p.src_port ?? ''};${p.from ?? ''};${p.proto ?? ''}`;
}

function ports(text: string, what: string, key: string): PortRange {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text.trim());
  const start = Number(m?.[1]);
  const end = m?.[2] !== undefined ? Number(m[2]) : start;
  if (!m || start > 65535 || end > 65535 || start > end) {
    throw new AgentError('INVALID_ARGUMENT', `policy route ${key}: ${what} ${JSON.stringify(text)} is not a port or a range start-end within 0-65535`);
  }
  return { start, end };
}

/** The policy checked and in kernel terms; INVALID_ARGUMENT naming the policy and the field. */
export function policySpec(p: PolicyRoute): PolicySpec {
  const key = policyKey(p);
  const spec: PolicySpec = { key, family: 4, routes: [] };
  let family: 4 | 6 | undefined;
  if (p.from) {
    const src = parseNetwork(p.from.includes('/') ? p.from : `${p.from}/${p.from.includes(':') ? 128 : 32}`);
    if (!src) throw new AgentError('INVALID_ARGUMENT', `policy route ${key}: from ${JSON.stringify(p.from)} is not an address or a CIDR prefix`);
    spec.src = formatPrefix(src);
    family = src.family;
  }
  if (p.proto) {
    if (!/^\d{1,3}$/.test(p.proto.trim()) || Number(p.proto) > 255) {
      throw new AgentError('INVALID_ARGUMENT', `policy route ${key}: proto ${JSON.stringify(p.proto)} is not an IP protocol number (0-255)`);
    }
    spec.ipProto = Number(p.proto);
  }
  if (p.src_port) spec.sport = ports(p.src_port, 'src_port', key);
  if (p.dst_port) spec.dport = ports(p.dst_port, 'dst_port', key);
  for (const r of p.routes ?? []) {
    const dst = parseNetwork(r.prefix ?? '');
    if (!dst) throw new AgentError('INVALID_ARGUMENT', `policy route ${key}: route prefix ${JSON.stringify(r.prefix ?? '')} is not a CIDR prefix`);
    family ??= dst.family;
    if (dst.family !== family) throw new AgentError('INVALID_ARGUMENT', `policy route ${key}: route ${r.prefix} is not of the policy's address family (IPv${family})`);
    const route: TableRoute = { dst: formatPrefix(dst) };
    if (r.nextHop) {
      const via = parseIp(r.nextHop);
      if (!via || via.family !== family) throw new AgentError('INVALID_ARGUMENT', `policy route ${key}: next hop ${JSON.stringify(r.nextHop)} is not an IPv${family} address`);
      route.via = r.nextHop;
    }
    spec.routes.push(route);
  }
  spec.family = family ?? 4;
  if (!spec.routes.length) spec.routes.push({ dst: spec.family === 4 ? '0.0.0.0/0' : '::/0' });
  return spec;
}

/** The policies of an IP context, checked; a key given twice keeps its last policy. */
export function policySpecs(list: readonly PolicyRoute[] | null | undefined): PolicySpec[] {
  const byKey = new Map<string, PolicySpec>();
  for (const p of list ?? []) {
    const spec = policySpec(p);
    byKey.delete(spec.key);
    byKey.set(spec.key, spec);
  }
  return [...byKey.values()];
}

const routeId = (r: TableRoute) => `${r.dst} ${r.via ?? ''}`;

/** What changes inside the table of a policy that stays. */
export interface TableChange {
  applied: AppliedPolicy;
  add: TableRoute[];
  remove: TableRoute[];
  /** The policy with its new routes, once they are in. */
  next: AppliedPolicy;
}

export interface PolicyDiff {
  /** New keys: a table and a rule each. */
  add: PolicySpec[];
  /** Keys no longer wanted: their rule and table go. */
  remove: AppliedPolicy[];
  /** Same key, other routes: the rule stays, the table's routes change. */
  change: TableChange[];
  /** Same key, same routes: untouched. */
  keep: AppliedPolicy[];
}

/**
 * How to go from `current` to `wanted`. A policy whose family changed under the same key
 * (its routes went from IPv4 to IPv6) is removed and added again: a rule has one family.
 */
export function diffPolicies(current: readonly AppliedPolicy[], wanted: readonly PolicySpec[]): PolicyDiff {
  const diff: PolicyDiff = { add: [], remove: [], change: [], keep: [] };
  const want = new Map(wanted.map((w) => [w.key, w]));
  for (const applied of current) {
    const w = want.get(applied.key);
    if (!w || w.family !== applied.family) {
      diff.remove.push(applied);
      continue;
    }
    const have = new Set(applied.routes.map(routeId));
    const next = new Set(w.routes.map(routeId));
    const add = w.routes.filter((r) => !have.has(routeId(r)));
    const remove = applied.routes.filter((r) => !next.has(routeId(r)));
    if (add.length || remove.length) diff.change.push({ applied, add, remove, next: { ...w, table: applied.table } });
    else diff.keep.push(applied);
  }
  const kept = new Set([...diff.keep, ...diff.change.map((c) => c.applied)].map((a) => a.key));
  for (const w of wanted) if (!kept.has(w.key)) diff.add.push(w);
  return diff;
}

/** Tables of the main, default and local routing, which no policy may take. */
const RESERVED_TABLES = new Set([0, 253, 254, 255]);

/** The first table id from 1 up that is neither used nor reserved. */
export function freeTable(used: ReadonlySet<number>): number {
  for (let t = 1; ; t++) if (!used.has(t) && !RESERVED_TABLES.has(t)) return t;
}
