import { describe, it, expect } from 'vitest';
import type { Connection } from '../../../src/api';
import { chainServer, type NetworkServiceServer } from '../../../src/core/networkservice';
import { AgentError } from '../../../src/core/errors';
import { AddressPool } from '../../../src/networkservice/ipam/pool';
import { ipamServer } from '../../../src/networkservice/ipam/server';
import { excludedPrefixesServer } from '../../../src/networkservice/excludedprefixes';
import { fakeCtx, recorder } from './helpers';

describe('AddressPool and excluded prefixes', () => {
  it('allocates outside the excluded prefixes', () => {
    const pool = new AddressPool(['172.16.30.0/29']);
    const [pair] = pool.allocate('c', { src: [], dst: [] }, ['172.16.30.0/31']);
    expect(pair).toMatchObject({ dst: 0xac101e02n, src: 0xac101e03n });
  });

  it('ADDRESS_OVERLAP when only the excluded prefixes leave no pair, naming the pool and those that overlap it', () => {
    const pool = new AddressPool(['172.16.30.0/31']);
    let err: AgentError | undefined;
    try {
      pool.allocate('c', { src: [], dst: [] }, ['172.16.30.1/32', '10.0.0.0/8']);
    } catch (e) {
      err = e as AgentError;
    }
    expect(err?.code).toBe('ADDRESS_OVERLAP');
    expect(err?.message).toBe('address pool 172.16.30.0/31 has no free address pair outside the prefixes the client excludes: 172.16.30.1/32');
    expect(pool.size).toBe(0);
  });

  it('POOL_EXHAUSTED when the pool is full anyway', () => {
    const pool = new AddressPool(['172.16.30.0/31']);
    pool.allocate('a', { src: [], dst: [] });
    expect(() => pool.allocate('b', { src: [], dst: [] }, ['172.16.30.0/31'])).toThrow(expect.objectContaining({ code: 'POOL_EXHAUSTED' }));
  });

  it('a dual-pool allocation that fails on its second prefix keeps nothing of the first', () => {
    const pool = new AddressPool(['172.16.30.0/30', 'fd00::/127']);
    expect(() => pool.allocate('c', { src: [], dst: [] }, ['fd00::/127'])).toThrow(expect.objectContaining({ code: 'ADDRESS_OVERLAP' }));
    expect(pool.allocate('d', { src: [], dst: [] })[0]).toMatchObject({ dst: 0xac101e00n });
  });
});

const KERNEL = (netns: string, ifname: string) => ({ type: 'KERNEL', cls: 'LOCAL', parameters: { name: ifname, inodeURL: `file://${netns}` } });

/** Two endpoints with the same pool: connection `a` gets the first, every other the second. */
function twoEndpoints(cidr: string): NetworkServiceServer {
  const first = chainServer(ipamServer(new AddressPool([cidr])));
  const second = chainServer(ipamServer(new AddressPool([cidr])));
  return {
    request: (ctx, req) => (req.connection?.id === 'a' ? first : second).request(ctx, req),
    close: (ctx, conn) => (conn.id === 'a' ? first : second).close(ctx, conn),
  };
}

function setup(opts: { connected?: { prefix: string; ifname: string; netns?: string }[]; endpoint?: NetworkServiceServer } = {}) {
  const seen = recorder();
  const element = excludedPrefixesServer({
    clientSide: (conn) => {
      const p = conn.mechanism?.parameters ?? {};
      return p['inodeURL'] ? { netns: p['inodeURL'].slice(7), key: p['inodeURL'], ifname: p['name'] ?? '' } : undefined;
    },
    connected: async (netns, skip) => (opts.connected ?? []).filter((c) => c.ifname !== skip && (c.netns ?? netns) === netns),
  });
  const chain = chainServer(element, seen, opts.endpoint ?? twoEndpoints('172.16.30.0/29'));
  const conn = (id: string, netns: string, ifname: string): Connection => ({ id, mechanism: KERNEL(netns, ifname), path: { index: 1, path_segments: [{ id: `client-${id}` }, { id }] } });
  return { chain, seen, conn, ctx: fakeCtx().ctx };
}

describe('excludedprefixes (client side)', () => {
  it('a Request carries the other connections` addresses of the same namespace and its connected prefixes', async () => {
    const { chain, seen, conn, ctx } = setup({ connected: [{ prefix: '192.168.7.0/24', ifname: 'eth0' }, { prefix: '172.16.30.1/32', ifname: 'nsm-a', netns: '/run/netns/x' }] });
    const a = await chain.request(ctx, { connection: conn('a', '/run/netns/x', 'nsm-a') });
    expect(seen.requests[0]!.connection?.context?.ip_context?.excluded_prefixes).toEqual(['192.168.7.0/24']);
    expect(a.context?.ip_context?.src_ip_addrs).toEqual(['172.16.30.1/32']);
    const b = await chain.request(ctx, { connection: conn('b', '/run/netns/x', 'nsm-b') });
    expect(seen.requests[1]!.connection?.context?.ip_context?.excluded_prefixes).toEqual(['172.16.30.1/32', '172.16.30.0/32', '192.168.7.0/24']);
    expect(b.context?.ip_context?.src_ip_addrs).toEqual(['172.16.30.3/32']);
    expect(b.context?.ip_context?.dst_ip_addrs).toEqual(['172.16.30.2/32']);
    // another namespace: only its own
    await chain.request(ctx, { connection: conn('c', '/run/netns/y', 'nsm-c') });
    expect(seen.requests[2]!.connection?.context?.ip_context?.excluded_prefixes).toEqual(['192.168.7.0/24']);
  });

  it('refusal names whose each excluded prefix is; a closed connection frees its addresses', async () => {
    const tight = setup({ endpoint: twoEndpoints('172.16.30.0/31') });
    const a = await tight.chain.request(tight.ctx, { connection: tight.conn('a', '/run/netns/x', 'nsm-a') });
    const refused = await tight.chain.request(tight.ctx, { connection: tight.conn('b', '/run/netns/x', 'nsm-b') }).catch((e: AgentError) => e);
    expect((refused as AgentError).code).toBe('ADDRESS_OVERLAP');
    expect((refused as AgentError).message).toBe(
      "connection client-b: address pool 172.16.30.0/31 has no free address pair outside the prefixes the client excludes: 172.16.30.1/32, 172.16.30.0/32; in network namespace /run/netns/x: 172.16.30.1/32 is connection client-a's, 172.16.30.0/32 is connection client-a's",
    );
    await tight.chain.close(tight.ctx, a);
    const b = await tight.chain.request(tight.ctx, { connection: tight.conn('b', '/run/netns/x', 'nsm-b') });
    expect(b.context?.ip_context?.src_ip_addrs).toEqual(['172.16.30.1/32']);
  });

  it('an endpoint that ignores them: the new connection is closed again and refused', async () => {
    const closes: Connection[] = [];
    const ignoring: NetworkServiceServer = {
      request: async (_ctx, req) => ({ ...req.connection, network_service_endpoint_name: 'upstream-nse', context: { ip_context: { src_ip_addrs: ['192.168.7.9/32'], dst_ip_addrs: ['192.168.7.8/32'] } } }),
      close: async (_ctx, c) => void closes.push(c),
    };
    const { chain, conn, ctx } = setup({ connected: [{ prefix: '192.168.7.0/24', ifname: 'eth0' }], endpoint: ignoring });
    const err = (await chain.request(ctx, { connection: conn('a', '/run/netns/x', 'nsm-a') }).catch((e) => e)) as AgentError;
    expect(err.code).toBe('ADDRESS_OVERLAP');
    expect(err.message).toBe(
      "connection client-a: endpoint upstream-nse gave address 192.168.7.9/32, which overlaps 192.168.7.0/24 (interface eth0) in network namespace /run/netns/x; the connection was closed",
    );
    expect(closes).toHaveLength(1);
  });

  it('addresses the Request carried (a refresh, a vL3 router`s own) are not refused', async () => {
    const keeping: NetworkServiceServer = { request: async (_ctx, req) => req.connection ?? {}, close: async () => {} };
    const { chain, conn, ctx } = setup({ connected: [{ prefix: '172.16.1.0/24', ifname: 'lo' }], endpoint: keeping });
    const c = conn('a', '/run/netns/r', 'peer-1');
    c.context = { ip_context: { src_ip_addrs: ['172.16.1.0/32'] } };
    await expect(chain.request(ctx, { connection: c })).resolves.toBeTruthy();
  });

  it('leaves connections of other mechanisms alone', async () => {
    const { chain, seen, ctx } = setup();
    await chain.request(ctx, { connection: { id: 'w', mechanism: { type: 'WIREGUARD' } } });
    expect(seen.requests[0]!.connection?.context).toBeUndefined();
  });
});
