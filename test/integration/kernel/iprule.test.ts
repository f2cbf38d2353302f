/**
 * Root only: the iprule element in a real namespace. Policies become tables and rules
 * (sys/rule.ts), a refresh diffs them without touching the kept ones, an interface made anew
 * gets the kept tables' routes again, a failure on a new connection leaves nothing and closes
 * it, close removes everything, and a restarted agent takes its rules back from the records.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Connection, PolicyRoute } from '../../../src/api';
import { Ctx } from '../../../src/core/ctx';
import { chainServer, type NetworkServiceServer } from '../../../src/core/networkservice';
import type { Records } from '../../../src/core/records';
import { policyRoutesServer, type PolicyRecord } from '../../../src/mechanisms/kernel/iprule';
import { kernelMechanism } from '../../../src/mechanisms/kernel/params';
import { Rtnl, listRules, usedTables, type Netns } from '../../../src/sys';
import { tempNetns } from '../../helpers/netns';

const root = process.getuid?.() === 0;

function ip(ns: string, args: string[]): string {
  return execFileSync('ip', ['-n', ns, ...args], { encoding: 'utf8' });
}

/** Rules other than the kernel's three, as `ip rule` prints them. */
const rules = (ns: string) =>
  ip(ns, ['rule', 'show'])
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/^(0|32766|32767):/.test(l));

function memoryRecords(): Records<PolicyRecord> & { map: Map<string, PolicyRecord> } {
  const map = new Map<string, PolicyRecord>();
  return { map, put: (k, v) => void map.set(k, structuredClone(v)), delete: (k) => void map.delete(k), claim: (k) => map.get(k), leftovers: () => [...map] };
}

describe.skipIf(!root)('iprule element', () => {
  const tmp = tempNetns('iprule');
  let ns: Netns & { name: string };
  let policies: PolicyRoute[] = [];
  let fail: Error | undefined;
  const closed: string[] = [];
  /** Stands in for the vWire: the interface is there; answers with `policies`. */
  const answer: NetworkServiceServer = {
    async request(_ctx, req) {
      if (fail) throw fail;
      return { ...req.connection, context: { ip_context: { src_ip_addrs: ['172.16.2.201/32'], policies } } };
    },
    close: async (_ctx, conn) => void closed.push(conn.id ?? ''),
  };
  const conn = (id: string, ifname = 'nsm-1'): Connection => ({ id, mechanism: kernelMechanism({ netns: ns.path, ifname }) });
  const records = memoryRecords();
  let chain = chainServer(policyRoutesServer({ records }), answer);

  beforeAll(async () => {
    ns = await tmp.create('c');
    for (const i of ['nsm-1', 'nsm-2']) {
      ip(ns.name, ['link', 'add', i, 'type', 'veth', 'peer', 'name', `${i}p`]);
      ip(ns.name, ['link', 'set', i, 'up']);
      ip(ns.name, ['link', 'set', `${i}p`, 'up']);
    }
    ip(ns.name, ['addr', 'add', '172.16.2.201/32', 'dev', 'nsm-1']);
    ip(ns.name, ['route', 'add', '10.9.0.0/16', 'dev', 'nsm-2', 'table', '1']); // table 1 is taken
  });
  afterAll(async () => {
    await tmp.cleanup();
    Rtnl.closeAll();
  });

  it('a policy is a free table (1 is taken: 2) and a rule; sys lists both', async () => {
    policies = [{ from: '172.16.2.201/32', proto: '6', dst_port: '6666', routes: [{ prefix: '172.16.3.0/24', nextHop: '172.16.2.200' }] }];
    await chain.request(Ctx.background(), { connection: conn('c1') });
    expect(rules(ns.name)).toEqual([expect.stringMatching(/from 172\.16\.2\.201 ipproto tcp dport 6666 lookup 2$/)]);
    expect(ip(ns.name, ['route', 'show', 'table', '2'])).toMatch(/172\.16\.3\.0\/24 via 172\.16\.2\.200 dev nsm-1 .*onlink/);
    const listed = await listRules(Rtnl.for(ns));
    expect(listed.find((r) => r.table === 2)).toMatchObject({ family: 4, src: '172.16.2.201/32', ipProto: 6, dport: { start: 6666, end: 6666 } });
    expect([...(await usedTables(Rtnl.for(ns)))]).toEqual(expect.arrayContaining([1, 2, 254, 255]));
    expect(records.map.get('c1')?.policies.map((p) => p.table)).toEqual([2]);
  });

  it('a second connection in the namespace takes the next free table', async () => {
    policies = [{ src_port: '5555' }];
    await chain.request(Ctx.background(), { connection: conn('c2', 'nsm-2') });
    expect(ip(ns.name, ['route', 'show', 'table', '3'])).toMatch(/default dev nsm-2/);
    expect(rules(ns.name)).toHaveLength(2);
  });

  it('a refresh changes routes inside the table, keeps the rule, adds and removes the others', async () => {
    const before = rules(ns.name).find((r) => r.includes('lookup 2'));
    policies = [
      { from: '172.16.2.201/32', proto: '6', dst_port: '6666', routes: [{ prefix: '172.16.4.0/24' }] },
      { proto: '17', dst_port: '6667-6670' },
    ];
    await chain.request(Ctx.background(), { connection: conn('c1') });
    expect(rules(ns.name)).toContain(before);
    const t2 = ip(ns.name, ['route', 'show', 'table', '2']);
    expect(t2).toMatch(/172\.16\.4\.0\/24 dev nsm-1/);
    expect(t2).not.toMatch(/172\.16\.3\.0/);
    expect(rules(ns.name).some((r) => /ipproto udp dport 6667-6670 lookup 4$/.test(r))).toBe(true);

    policies = [{ proto: '17', dst_port: '6667-6670' }];
    await chain.request(Ctx.background(), { connection: conn('c1') });
    expect(rules(ns.name).some((r) => r.includes('lookup 2'))).toBe(false);
    expect(ip(ns.name, ['route', 'show', 'table', '2'])).toBe('');
  });

  it('an interface made anew gets the kept tables` routes again', async () => {
    ip(ns.name, ['link', 'del', 'nsm-1']);
    ip(ns.name, ['link', 'add', 'nsm-1', 'type', 'veth', 'peer', 'name', 'nsm-1p']);
    ip(ns.name, ['link', 'set', 'nsm-1', 'up']);
    expect(ip(ns.name, ['route', 'show', 'table', '4'])).toBe('');
    await chain.request(Ctx.background(), { connection: conn('c1') });
    expect(ip(ns.name, ['route', 'show', 'table', '4'])).toMatch(/default dev nsm-1/);
  });

  it('a restarted agent takes the rules back from its records; close removes them', async () => {
    chain = chainServer(policyRoutesServer({ records }), answer);
    await chain.request(Ctx.background(), { connection: conn('c1') });
    expect(rules(ns.name).filter((r) => r.includes('6667-6670'))).toHaveLength(1);
    await chain.close(Ctx.background(), conn('c1'));
    await chain.close(Ctx.background(), conn('c2'));
    expect(rules(ns.name)).toEqual([]);
    expect(ip(ns.name, ['route', 'show', 'table', '3'])).toBe('');
    expect(records.map.size).toBe(0);
  });

  it('an IPv6 policy is an inet6 rule and table (upstream policy-based-routing`s v6 case)', async () => {
    ip(ns.name, ['-6', 'addr', 'add', '2004::3/128', 'dev', 'nsm-2', 'nodad']);
    policies = [{ from: '2004::3/120', proto: '17', dst_port: '5555', routes: [{ prefix: '2004::5/120', nextHop: '2004::6' }] }];
    await chain.request(Ctx.background(), { connection: conn('c6', 'nsm-2') });
    // table 1 holds an IPv4 route: table ids are shared by both families
    expect(ip(ns.name, ['-6', 'rule', 'show'])).toMatch(/from 2004::\/120 ipproto udp dport 5555 lookup 2\b/);
    expect(ip(ns.name, ['-6', 'route', 'show', 'table', '2'])).toMatch(/2004::\/120 via 2004::6 dev nsm-2/);
    expect(ip(ns.name, ['-6', 'route', 'get', '2004::5', 'from', '2004::3', 'ipproto', 'udp', 'dport', '5555'])).toMatch(/table 2\b/);
    await chain.close(Ctx.background(), conn('c6', 'nsm-2'));
    expect(ip(ns.name, ['-6', 'rule', 'show'])).not.toMatch(/lookup 2\b/);
    expect(ip(ns.name, ['-6', 'route', 'show', 'table', '2'])).toBe('');
  });

  it('a new connection whose policies cannot be made is closed, with nothing left', async () => {
    policies = [{ dst_port: '80' }, { dst_port: '81', routes: [{ prefix: '172.16.9.0/24', nextHop: '172.16.2.200' }] }];
    closed.length = 0;
    const err = await chain.request(Ctx.background(), { connection: conn('c3', 'nsm-gone') }).catch((e) => e);
    expect(err.code).toBe('DATAPLANE');
    expect(err.message).toMatch(/interface nsm-gone is not in network namespace/);
    expect(closed).toEqual(['c3']);
    expect(rules(ns.name)).toEqual([]);
    policies = [{ proto: 'tcp' }];
    const bad = await chain.request(Ctx.background(), { connection: conn('c4') }).catch((e) => e);
    expect(bad.code).toBe('INVALID_ARGUMENT');
    expect(closed).toEqual(['c3', 'c4']);
    expect(rules(ns.name)).toEqual([]);
  });
});
