/**
 * Policy routes in the client's namespace (sdk-kernel's iprule element): each policy of the
 * answer's IP context gets a routing table of its own, holding its routes through the
 * client's interface, and one `ip rule` (from, proto, sport, dport) that looks it up. Every
 * Request (new or refresh) diffs the wanted policies against what the connection has
 * (./policies.ts): new keys get a table and a rule, gone keys lose theirs, changed routes
 * change inside their table; the rest is not touched. Close removes all of the connection's.
 *
 * A new connection whose policies cannot be made is refused and closed again, with what was
 * made of them removed (nothing half-made); a refresh that fails to apply them keeps the
 * connection and what it had, and the next refresh tries again. Work in one namespace is
 * serialized, so two connections never pick the same free table. With records, what was
 * made survives an agent restart (taken back on the connection's next Request, reaped at its
 * expiry otherwise).
 * Placement: in the KERNEL handler before the kernel server, so it runs once the client's
 * interface exists (a local vWire, or a tunnel's end).
 */
import type { Connection } from '../../api';
import type { Ctx } from '../../core/ctx';
import { AgentError } from '../../core/errors';
import { NetworkServiceServer, nextServer } from '../../core/networkservice';
import { noRecords, type Records } from '../../core/records';
import * as sys from '../../sys';
import { recordExpiry } from '../../networkservice/utils';
import { kernelSide } from './params';
import { diffPolicies, freeTable, policySpecs, type AppliedPolicy, type PolicySpec, type TableRoute } from './policies';
import { requireNetns } from './vwire';

export interface PolicyRecord {
  expires: number;
  netns: string;
  /** The interface's ifindex the tables' routes go through. */
  index: number;
  policies: AppliedPolicy[];
}

interface Held {
  netns: string;
  index: number;
  policies: AppliedPolicy[];
}

function ruleOf(p: AppliedPolicy): sys.RuleSpec {
  return {
    family: p.family,
    table: p.table,
    ...(p.src !== undefined ? { src: p.src } : {}),
    ...(p.ipProto !== undefined ? { ipProto: p.ipProto } : {}),
    ...(p.sport ? { sport: p.sport } : {}),
    ...(p.dport ? { dport: p.dport } : {}),
  };
}

const ignore = (codes: string[]) => (err: { code?: string }) => {
  if (!codes.includes(err.code ?? '')) throw err;
};

async function addRoute(rtnl: sys.Rtnl, table: number, index: number, r: TableRoute): Promise<void> {
  await sys.replaceRoute(rtnl, { dst: r.dst, index, table, ...(r.via ? { via: r.via, onlink: true } : { scope: 'link' }) });
}

async function delRoute(rtnl: sys.Rtnl, table: number, index: number, r: TableRoute): Promise<void> {
  await sys.delRoute(rtnl, { dst: r.dst, index, table, ...(r.via ? { via: r.via } : {}) }).catch(ignore(['ESRCH', 'ENODEV']));
}

/** Removes a policy's rule and table (either may be gone already). */
async function removePolicy(rtnl: sys.Rtnl, p: AppliedPolicy): Promise<void> {
  await sys.delRule(rtnl, ruleOf(p)).catch(ignore(['ENOENT']));
  await sys.flushTable(rtnl, p.table);
}

/** Removes everything a record says a connection had, in its namespace (if still there). */
export async function removeRecorded(r: { netns: string; policies: AppliedPolicy[] }): Promise<void> {
  let ns: sys.Netns;
  try {
    ns = sys.openNetns(r.netns);
  } catch {
    return; // the namespace is gone, and its rules with it
  }
  try {
    const rtnl = sys.Rtnl.for(ns);
    for (const p of r.policies) await removePolicy(rtnl, p).catch(() => {});
  } finally {
    ns.close();
  }
}

/** The reaper of policy records (StateStore kind options). */
export const policyReaper = {
  expiresOf: (r: PolicyRecord) => r.expires,
  reap: (_key: string, r: PolicyRecord) => removeRecorded(r),
};

export function policyRoutesServer(opts: { records?: Records<PolicyRecord> } = {}): NetworkServiceServer {
  const records = opts.records ?? noRecords<PolicyRecord>();
  const held = new Map<string, Held>();
  /** The tail of the work queued per namespace path. */
  const queues = new Map<string, Promise<unknown>>();
  const serialized = <T>(netns: string, fn: () => Promise<T>): Promise<T> => {
    const run = (queues.get(netns) ?? Promise.resolve()).then(fn, fn);
    const tail = run.catch(() => {});
    queues.set(netns, tail);
    void tail.then(() => {
      if (queues.get(netns) === tail) queues.delete(netns);
    });
    return run;
  };

  /**
   * Brings `h` to `wanted` in the namespace and updates it. On a failure, throws, with `h`
   * holding what is in the kernel at that point. An interface made anew (another ifindex: a
   * vWire rebuilt) lost the tables' routes with the old one: the kept policies get them again.
   */
  const apply = async (h: Held, ifname: string, wanted: PolicySpec[]): Promise<void> => {
    const diff = diffPolicies(h.policies, wanted);
    const ns = requireNetns(h.netns);
    const now = [...diff.keep, ...diff.change.map((c) => c.applied), ...diff.remove];
    try {
      const rtnl = sys.Rtnl.for(ns);
      const link = await sys.getLink(rtnl, ifname);
      if (!link) throw new AgentError('DATAPLANE', `interface ${ifname} is not in network namespace ${h.netns}`);
      if (link.index !== h.index) {
        for (const p of diff.keep) for (const r of p.routes) await addRoute(rtnl, p.table, link.index, r);
        h.index = link.index;
      }
      for (const p of diff.remove) {
        await removePolicy(rtnl, p);
        now.splice(now.indexOf(p), 1);
      }
      for (const c of diff.change) {
        for (const r of c.add) await addRoute(rtnl, c.applied.table, link.index, r);
        for (const r of c.remove) await delRoute(rtnl, c.applied.table, link.index, r);
        now[now.indexOf(c.applied)] = c.next;
      }
      const used = diff.add.length ? await sys.usedTables(rtnl) : new Set<number>();
      for (const spec of diff.add) {
        const p: AppliedPolicy = { ...spec, table: freeTable(used) };
        used.add(p.table);
        now.push(p);
        for (const r of p.routes) await addRoute(rtnl, p.table, link.index, r);
        await sys.addRule(rtnl, ruleOf(p));
      }
    } catch (err) {
      throw AgentError.wrap(err, `policy routes of interface ${ifname} in ${h.netns}`, 'DATAPLANE');
    } finally {
      h.policies = now;
      ns.close();
    }
  };

  const forget = async (id: string): Promise<void> => {
    const h = held.get(id);
    if (!h) return;
    held.delete(id);
    records.delete(id);
    await serialized(h.netns, () => removeRecorded(h));
  };

  const undo = async (ctx: Ctx, out: Connection, err: unknown): Promise<never> => {
    const [closeCtx, done] = ctx.detached(5_000);
    await nextServer(ctx).close(closeCtx, out).catch(() => {});
    done();
    throw err;
  };

  return {
    async request(ctx, req) {
      const out = await nextServer(ctx).request(ctx, req);
      const id = out.id ?? req.connection?.id ?? '';
      if (out.mechanism?.type !== 'KERNEL' && req.connection?.mechanism?.type !== 'KERNEL') return out;
      const side = kernelSide(out.mechanism?.type === 'KERNEL' ? out.mechanism : req.connection?.mechanism);
      let h = held.get(id);
      if (!h) {
        const r = records.claim(id);
        h = r && r.netns === side.netns ? { netns: r.netns, index: r.index, policies: r.policies } : { netns: side.netns, index: 0, policies: [] };
        if (r && r.netns !== side.netns) await removeRecorded(r);
      }
      const isNew = !held.has(id) && !h.policies.length;
      let wanted: PolicySpec[];
      try {
        wanted = policySpecs(out.context?.ip_context?.policies);
      } catch (err) {
        if (isNew) return undo(ctx, out, err);
        ctx.log.warn('policy routes of the answer are invalid; the connection keeps its own', { id, error: err });
        return out;
      }
      if (!wanted.length && !h.policies.length) return out;
      const state = h;
      try {
        await serialized(side.netns, () => apply(state, side.ifname, wanted));
      } catch (err) {
        if (isNew) {
          await serialized(side.netns, () => removeRecorded(state));
          return undo(ctx, out, err);
        }
        ctx.log.warn('policy routes not all applied; the next refresh tries again', { id, error: err });
      }
      held.set(id, state);
      if (state.policies.length) records.put(id, { expires: recordExpiry(out, ctx.clock.now()), netns: state.netns, index: state.index, policies: state.policies });
      else {
        held.delete(id);
        records.delete(id);
      }
      if (wanted.length) ctx.log.debug('policy routes applied', { id, tables: state.policies.map((p) => p.table).join(',') });
      return out;
    },

    async close(ctx, conn) {
      const id = conn.id ?? '';
      if (!held.has(id)) {
        const r = records.claim(id);
        if (r) held.set(id, { netns: r.netns, index: r.index, policies: r.policies });
      }
      try {
        await forget(id);
      } catch (err) {
        ctx.log.warn('policy routes not removed', { id, error: err });
      }
      await nextServer(ctx).close(ctx, conn);
    },
  };
}
