/**
 * The vL3 endpoint's addresses and routes (pool.ts, server.ts), in-process: what a client, a
 * peer endpoint and a client healing over from another endpoint get, as upstream's vl3 server
 * and strictvl3ipam give them.
 */
import { describe, expect, it } from 'vitest';
import type { Connection, NetworkServiceRequest } from '../../../../src/api';
import { Ctx } from '../../../../src/core/ctx';
import { chainServer, NetworkServiceServer } from '../../../../src/core/networkservice';
import { Vl3Pool } from '../../../../src/agent/endpoints/vl3/pool';
import { vl3Server } from '../../../../src/agent/endpoints/vl3/server';
import { isOlder, peerConnectionId, peerIfName } from '../../../../src/agent/endpoints/vl3/mesh';
import { routerNetnsName } from '../../../../src/agent/endpoints/vl3/names';

const tail: NetworkServiceServer = { request: async (_ctx, req) => req.connection ?? {}, close: async () => {} };

function setup(...prefixes: string[]) {
  const pools = prefixes.map((p) => {
    const pool = new Vl3Pool();
    pool.reset(p);
    return pool;
  });
  const chain = chainServer(vl3Server(pools), tail);
  const request = (conn: Connection) => chain.request(Ctx.background(), { connection: conn } as NetworkServiceRequest);
  return { pools, chain, request };
}

describe('Vl3Pool', () => {
  it('masks host bits and derives the own address and the global network as upstream', () => {
    const pool = new Vl3Pool();
    expect(pool.initialized).toBe(false);
    pool.reset('172.16.1.7/24');
    expect(pool.prefix).toBe('172.16.1.0/24');
    expect(pool.self).toBe('172.16.1.0/32');
    expect(pool.global).toBe('172.16.1.0/16');
    const v6 = new Vl3Pool();
    v6.reset('2001:db8::1:0/112');
    expect(v6.self).toBe('2001:db8::1:0/128');
    expect(v6.global).toBe('2001:db8::1:0/64');
  });

  it('never hands out the own address, honours excludes, keeps an owner on one address', () => {
    const pool = new Vl3Pool();
    pool.reset('10.0.0.0/29', ['10.0.0.1/32']);
    const a = pool.allocate('a');
    expect(a).toBe('10.0.0.2/32');
    expect(pool.allocate('a')).toBe(a);
    expect(pool.allocate('b', '10.0.0.2/32')).not.toBe(a); // taken by a
    expect(pool.allocate('c', '10.0.0.5/32')).toBe('10.0.0.5/32'); // free: granted
    expect(pool.allocate('d', '192.168.0.1/32')).not.toBe('192.168.0.1/32'); // outside
  });

  it('runs out with POOL_EXHAUSTED and frees on release', () => {
    const pool = new Vl3Pool();
    pool.reset('10.0.0.0/30'); // .0 own, .3 broadcast: .1 and .2
    pool.allocate('a');
    pool.allocate('b');
    expect(() => pool.allocate('c')).toThrow(expect.objectContaining({ code: 'POOL_EXHAUSTED' }));
    pool.release('a');
    expect(pool.allocate('c')).toBe('10.0.0.1/32');
  });

  it('keeps its allocations when the same prefix comes again, drops them on a new one', () => {
    const pool = new Vl3Pool();
    pool.reset('10.0.1.0/24');
    pool.allocate('a');
    expect(pool.reset('10.0.1.0/24')).toBe(false);
    expect(pool.size).toBe(1);
    expect(pool.reset('10.0.2.0/24')).toBe(true);
    expect(pool.size).toBe(0);
    expect(() => pool.reset('2001:db8::/64')).toThrow(/not an IPv4 prefix/);
    expect(() => pool.reset('10.0.0.0/32')).toThrow(/too small/);
  });
});

describe('vl3Server', () => {
  it('fails UNAVAILABLE until the prefix is leased', async () => {
    const chain = chainServer(vl3Server([new Vl3Pool()]), tail);
    await expect(chain.request(Ctx.background(), { connection: { id: 'c1' } })).rejects.toMatchObject({ code: 'UNAVAILABLE', message: expect.stringMatching(/initializing/) });
  });

  it('gives a client one address and routes to the endpoint, its prefix and the network', async () => {
    const { request } = setup('172.16.0.0/24');
    const out = await request({ id: 'c1' });
    const ipc = out.context?.ip_context;
    expect(ipc?.src_ip_addrs).toEqual(['172.16.0.1/32']);
    expect(ipc?.dst_ip_addrs).toEqual(['172.16.0.0/32']);
    expect(ipc?.src_routes).toEqual([
      { prefix: '172.16.0.0/32', nextHop: '172.16.0.0' },
      { prefix: '172.16.0.0/24', nextHop: '172.16.0.0' },
      { prefix: '172.16.0.0/16', nextHop: '172.16.0.0' },
    ]);
    expect(ipc?.dst_routes).toEqual([{ prefix: '172.16.0.1/32', nextHop: '' }]);
    // a refresh keeps the address; another client gets another
    expect((await request(out)).context?.ip_context?.src_ip_addrs).toEqual(['172.16.0.1/32']);
    expect((await request({ id: 'c2' })).context?.ip_context?.src_ip_addrs).toEqual(['172.16.0.2/32']);
  });

  it('keeps the address a client brings after an agent restart when it is free', async () => {
    const { request } = setup('172.16.0.0/24');
    const out = await request({ id: 'c9', context: { ip_context: { src_ip_addrs: ['172.16.0.77/32'], dst_ip_addrs: ['172.16.0.0/32'] } } });
    expect(out.context?.ip_context?.src_ip_addrs).toEqual(['172.16.0.77/32']);
  });

  it('gives a client healing over from another endpoint a new address (strict)', async () => {
    const { request } = setup('172.16.0.0/24');
    const out = await request({ id: 'c1', context: { ip_context: { src_ip_addrs: ['172.16.1.5/32'], dst_ip_addrs: ['172.16.1.0/32'] } } });
    expect(out.context?.ip_context?.src_ip_addrs).toEqual(['172.16.0.1/32']);
    expect(out.context?.ip_context?.dst_ip_addrs).toEqual(['172.16.0.0/32']);
  });

  it('gives a peer endpoint no address and keeps its routes to its prefix', async () => {
    const { request, pools } = setup('172.16.0.0/24');
    const out = await request({
      id: 'peer',
      context: {
        ip_context: {
          src_ip_addrs: ['172.16.1.0/32'],
          dst_routes: [
            { prefix: '172.16.1.0/32', nextHop: '172.16.1.0' },
            { prefix: '172.16.1.0/24', nextHop: '172.16.1.0' },
          ],
        },
      },
    });
    const ipc = out.context?.ip_context;
    expect(ipc?.src_ip_addrs).toEqual(['172.16.1.0/32']);
    expect(ipc?.dst_ip_addrs).toEqual(['172.16.0.0/32']);
    expect(ipc?.dst_routes).toEqual([
      { prefix: '172.16.1.0/32', nextHop: '172.16.1.0' },
      { prefix: '172.16.1.0/24', nextHop: '172.16.1.0' },
    ]);
    expect(pools[0]!.size).toBe(0);
  });

  it('dual stack: one address per family', async () => {
    const { request } = setup('172.16.0.0/24', '2001:db8::/112');
    const out = await request({ id: 'c1' });
    expect(out.context?.ip_context?.src_ip_addrs).toEqual(['172.16.0.1/32', '2001:db8::1/128']);
    expect(out.context?.ip_context?.dst_ip_addrs).toEqual(['172.16.0.0/32', '2001:db8::/128']);
  });

  it('clamps the MTU to the lowest seen: the mesh vWires, then any narrower request', async () => {
    const pool = new Vl3Pool();
    pool.reset('172.16.0.0/24');
    const chain = chainServer(vl3Server([pool], { mtu: () => 1440 }), tail);
    const req = (id: string, MTU?: number) => chain.request(Ctx.background(), { connection: { id, ...(MTU ? { context: { MTU } } : {}) } });
    expect((await req('c1')).context?.MTU).toBe(1440);
    expect((await req('c2', 9000)).context?.MTU).toBe(1440);
    expect((await req('peer', 1400)).context?.MTU).toBe(1400);
    expect((await req('c3')).context?.MTU).toBe(1400);
  });

  it('pushes a refresh to every other connection above the new lowest MTU, once', async () => {
    const pool = new Vl3Pool();
    pool.reset('172.16.0.0/24');
    const pushed: Connection[] = [];
    const chain = chainServer(vl3Server([pool], { mtu: () => 1440, refresh: (c) => pushed.push(c) }), tail);
    const path = (id: string) => ({ index: 1, path_segments: [{ name: 'agent', id: `hop-${id}` }, { name: 'vl3', id }] });
    const req = (id: string, MTU?: number) =>
      chain.request(Ctx.background(), { connection: { id, path: path(id), ...(MTU ? { context: { MTU } } : {}) } });
    await req('c1');
    const c2 = await req('c2');
    await req('gone');
    await chain.close(Ctx.background(), { id: 'gone', path: path('gone') });
    expect(pushed).toEqual([]);
    await req('peer', 1340);
    // c1 and c2 (1440) are asked again, with the path they were served on; not the peer itself,
    // not a closed one.
    expect(pushed.map((c) => [c.id, c.path?.path_segments?.[0]?.id, c.context?.MTU])).toEqual([
      ['c1', 'hop-c1', 1440],
      ['c2', 'hop-c2', 1440],
    ]);
    pushed.length = 0;
    // Their refreshes get the lower MTU and push nothing more; nor does a request at the same MTU.
    expect((await chain.request(Ctx.background(), { connection: c2 })).context?.MTU).toBe(1340);
    await req('peer', 1340);
    expect(pushed).toEqual([]);
    // A still lower one pushes to those above it only.
    await req('peer2', 1300);
    expect(pushed.map((c) => c.id).sort()).toEqual(['c1', 'c2', 'peer']);
  });

  it('lower(): a narrower MTU found elsewhere (the answer of a peer) is pushed to every connection served', async () => {
    const pool = new Vl3Pool();
    pool.reset('172.16.0.0/24');
    const pushed: string[] = [];
    const server = vl3Server([pool], { mtu: () => 1440, refresh: (c) => pushed.push(c.id!) });
    const chain = chainServer(server, tail);
    await chain.request(Ctx.background(), { connection: { id: 'c1' } });
    await chain.request(Ctx.background(), { connection: { id: 'c2' } });
    server.lower(1500);
    server.lower(1440);
    expect(pushed).toEqual([]);
    server.lower(1340);
    expect(pushed).toEqual(['c1', 'c2']);
    expect((await chain.request(Ctx.background(), { connection: { id: 'c3' } })).context?.MTU).toBe(1340);
  });

  it('frees the address on close', async () => {
    const { request, chain, pools } = setup('172.16.0.0/24');
    const out = await request({ id: 'c1' });
    await chain.close(Ctx.background(), out);
    expect(pools[0]!.size).toBe(0);
  });
});

describe('mesh rules', () => {
  const at = (ms: number) => ({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 });
  it('connects to endpoints registered before, ties broken by name', () => {
    expect(isOlder({ name: 'a', initial_registration_time: at(1000) }, { name: 'b', initial_registration_time: at(2000) })).toBe(true);
    expect(isOlder({ name: 'b', initial_registration_time: at(2000) }, { name: 'a', initial_registration_time: at(1000) })).toBe(false);
    expect(isOlder({ name: 'a', initial_registration_time: at(1000) }, { name: 'b', initial_registration_time: at(1000) })).toBe(true);
    expect(isOlder({ name: 'b', initial_registration_time: at(1000) }, { name: 'a', initial_registration_time: at(1000) })).toBe(false);
  });

  it('names peer connections and interfaces stably and within limits', () => {
    expect(peerConnectionId('a', 'b')).toBe(peerConnectionId('a', 'b'));
    expect(peerConnectionId('a', 'b')).not.toBe(peerConnectionId('b', 'a'));
    expect(peerIfName('a', 'b').length).toBeLessThanOrEqual(15);
    expect(routerNetnsName('x'.repeat(200)).length).toBeLessThanOrEqual(40);
  });
});
