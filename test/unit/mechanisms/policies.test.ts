import { describe, it, expect } from 'vitest';
import { diffPolicies, freeTable, policyKey, policySpec, policySpecs, type AppliedPolicy } from '../../../src/mechanisms/kernel/policies';
import { policyRouteServer } from '../../../src/networkservice/policyroute';
import { chainServer, tailServer } from '../../../src/core/networkservice';
import { Ctx } from '../../../src/core/ctx';

const tcp6666 = { from: '172.16.2.201/24', proto: '6', dst_port: '6666', routes: [{ prefix: '172.16.3.0/24', nextHop: '172.16.2.200' }] };
const applied = (p: Parameters<typeof policySpec>[0], table: number): AppliedPolicy => ({ ...policySpec(p), table });

describe('policy specs', () => {
  it('keys a policy as upstream iprule does: dst_port;src_port;from;proto', () => {
    expect(policyKey(tcp6666)).toBe('6666;;172.16.2.201/24;6');
    expect(policyKey({ src_port: '5555' })).toBe(';5555;;');
  });

  it('reads from, proto, port ranges and routes; masks prefixes; a policy without routes gets a default route', () => {
    expect(policySpec(tcp6666)).toEqual({
      key: '6666;;172.16.2.201/24;6',
      family: 4,
      src: '172.16.2.0/24',
      ipProto: 6,
      dport: { start: 6666, end: 6666 },
      routes: [{ dst: '172.16.3.0/24', via: '172.16.2.200' }],
    });
    expect(policySpec({ dst_port: '6667-6670' })).toMatchObject({ family: 4, dport: { start: 6667, end: 6670 }, routes: [{ dst: '0.0.0.0/0' }] });
    expect(policySpec({ from: '2004::3/120', proto: '17', dst_port: '5555', routes: [{ prefix: '2004::5/120', nextHop: '2004::6' }] })).toMatchObject({
      family: 6,
      src: '2004::/120',
      routes: [{ dst: '2004::/120', via: '2004::6' }],
    });
    expect(policySpec({ from: '2004::3' }).routes).toEqual([{ dst: '::/0' }]);
  });

  it('refuses what the kernel could not take, naming the policy and the field', () => {
    expect(() => policySpec({ proto: '300' })).toThrow(/policy route ;;;300: proto "300"/);
    expect(() => policySpec({ dst_port: '7-5' })).toThrow(/dst_port "7-5"/);
    expect(() => policySpec({ src_port: '70000' })).toThrow(/src_port/);
    expect(() => policySpec({ from: 'nope' })).toThrow(/from "nope"/);
    expect(() => policySpec({ from: '10.0.0.1', routes: [{ prefix: 'fd00::/64' }] })).toThrow(/not of the policy's address family/);
    expect(() => policySpec({ routes: [{ prefix: '10.0.0.0/8', nextHop: 'fd00::1' }] })).toThrow(/next hop/);
    try {
      policySpec({ proto: 'x' });
    } catch (err) {
      expect((err as { code: string }).code).toBe('INVALID_ARGUMENT');
    }
  });

  it('a key given twice keeps its last policy', () => {
    const list = policySpecs([tcp6666, { ...tcp6666, routes: [] }]);
    expect(list).toHaveLength(1);
    expect(list[0]!.routes).toEqual([{ dst: '0.0.0.0/0' }]);
  });
});

describe('diffPolicies', () => {
  const udp = { proto: '17', dst_port: '5555' };
  const sport = { src_port: '5555', routes: [{ prefix: '172.16.4.0/24' }] };

  it('from nothing: every policy is added', () => {
    const d = diffPolicies([], policySpecs([tcp6666, udp]));
    expect(d.add.map((p) => p.key)).toEqual(['6666;;172.16.2.201/24;6', '5555;;;17']);
    expect([d.remove, d.change, d.keep]).toEqual([[], [], []]);
  });

  it('the same policies: nothing to do', () => {
    const d = diffPolicies([applied(tcp6666, 1), applied(udp, 2)], policySpecs([udp, tcp6666]));
    expect(d.keep.map((p) => p.table)).toEqual([1, 2]);
    expect([d.add, d.remove, d.change]).toEqual([[], [], []]);
  });

  it('gone keys are removed, new keys added, the others kept', () => {
    const d = diffPolicies([applied(tcp6666, 1), applied(udp, 2)], policySpecs([tcp6666, sport]));
    expect(d.remove.map((p) => p.table)).toEqual([2]);
    expect(d.add.map((p) => p.key)).toEqual([';5555;;']);
    expect(d.keep.map((p) => p.table)).toEqual([1]);
    expect(d.change).toEqual([]);
  });

  it('same key with other routes: the table keeps its id and only its routes change', () => {
    const next = { ...tcp6666, routes: [{ prefix: '172.16.3.0/24', nextHop: '172.16.2.200' }, { prefix: '172.16.9.0/24' }] };
    const d = diffPolicies([applied(tcp6666, 7)], policySpecs([next]));
    expect(d.change).toHaveLength(1);
    expect(d.change[0]!.add).toEqual([{ dst: '172.16.9.0/24' }]);
    expect(d.change[0]!.remove).toEqual([]);
    expect(d.change[0]!.next.table).toBe(7);
    const back = diffPolicies([d.change[0]!.next], policySpecs([tcp6666]));
    expect(back.change[0]!.remove).toEqual([{ dst: '172.16.9.0/24' }]);
    expect([back.add, back.remove]).toEqual([[], []]);
  });

  it('a next hop change is a route change; a family change replaces the policy', () => {
    const moved = diffPolicies([applied(tcp6666, 1)], policySpecs([{ ...tcp6666, routes: [{ prefix: '172.16.3.0/24', nextHop: '172.16.2.201' }] }]));
    expect(moved.change[0]!.add).toEqual([{ dst: '172.16.3.0/24', via: '172.16.2.201' }]);
    expect(moved.change[0]!.remove).toEqual([{ dst: '172.16.3.0/24', via: '172.16.2.200' }]);
    const v6 = diffPolicies([applied({ dst_port: '80' }, 1)], policySpecs([{ dst_port: '80', routes: [{ prefix: 'fd00::/64' }] }]));
    expect(v6.remove).toHaveLength(1);
    expect(v6.add).toHaveLength(1);
  });

  it('all removed', () => {
    const d = diffPolicies([applied(tcp6666, 1), applied(udp, 2)], []);
    expect(d.remove.map((p) => p.table)).toEqual([1, 2]);
  });
});

describe('freeTable', () => {
  it('is the first id from 1 neither used nor one of the kernel tables', () => {
    expect(freeTable(new Set([0, 254, 255]))).toBe(1);
    expect(freeTable(new Set([1, 2, 4]))).toBe(3);
    expect(freeTable(new Set(Array.from({ length: 252 }, (_, i) => i + 1)))).toBe(256);
  });
});

describe('policyroute server', () => {
  it('sets the endpoint policies (replacing the request ones) and adds its routes once', async () => {
    const settings = { policies: [tcp6666], routes: [{ prefix: '172.16.5.0/24' }], ownsPolicies: true };
    const chain = chainServer(policyRouteServer(settings), tailServer);
    const ctx = Ctx.background();
    const first = await chain.request(ctx, { connection: { id: 'c', context: { ip_context: { src_routes: [{ prefix: '172.16.2.200/32' }], policies: [{ dst_port: '1' }] } } } });
    expect(first.context?.ip_context?.policies).toEqual([tcp6666]);
    expect(first.context?.ip_context?.src_routes).toEqual([{ prefix: '172.16.2.200/32' }, { prefix: '172.16.5.0/24' }]);
    const again = await chain.request(ctx, { connection: first });
    expect(again.context?.ip_context?.src_routes).toHaveLength(2);
    settings.policies = [];
    const cleared = await chain.request(ctx, { connection: again });
    expect(cleared.context?.ip_context?.policies).toEqual([]);
  });

  it('an endpoint that never had policies passes those of the request on', async () => {
    const chain = chainServer(policyRouteServer({ policies: [], routes: [], ownsPolicies: false }), tailServer);
    const out = await chain.request(Ctx.background(), { connection: { id: 'c', context: { ip_context: { policies: [tcp6666] } } } });
    expect(out.context?.ip_context?.policies).toEqual([tcp6666]);
  });
});
