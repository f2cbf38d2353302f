import { describe, it, expect } from 'vitest';
import type { Connection, NetworkServiceRequest } from '../../../src/api';
import { Ctx } from '../../../src/core/ctx';
import { AgentError } from '../../../src/core/errors';
import { chainServer, serverToClient, type NetworkServiceServer } from '../../../src/core/networkservice';
import { passthroughServer, type PassthroughJoint, type PassthroughRecord } from '../../../src/networkservice/passthrough';
import type { Records } from '../../../src/core/records';
import { recorder } from './helpers';

/** A joint that records the bridges it holds. */
function fakeJoint(): PassthroughJoint & { open_: string[] } {
  let n = 0;
  const open_: string[] = [];
  return {
    open_,
    open: async () => {
      const name = `br-${++n}`;
      open_.push(name);
      return name;
    },
    has: async (bridge) => open_.includes(bridge),
    close: async (bridge) => {
      const i = open_.indexOf(bridge);
      if (i >= 0) open_.splice(i, 1);
    },
  };
}

/**
 * The next element as the server chain would answer it: selects `endpoints[i]` (in turn) when
 * the request names none, and gives an IP context; `fail` makes it throw.
 */
function nextHop(endpoints: string[], fail?: () => AgentError | undefined): NetworkServiceServer & { requests: NetworkServiceRequest[]; closes: Connection[] } {
  let i = 0;
  const requests: NetworkServiceRequest[] = [];
  const closes: Connection[] = [];
  return {
    requests,
    closes,
    async request(_ctx, req) {
      requests.push(structuredClone(req));
      const err = fail?.();
      if (err) throw err;
      const conn = structuredClone(req.connection ?? {});
      conn.network_service_endpoint_name ||= endpoints[i++ % endpoints.length]!;
      conn.context = { ip_context: { src_ip_addrs: ['172.16.1.101/32'], dst_ip_addrs: ['172.16.1.100/32'] }, MTU: 1450 };
      return conn;
    },
    async close(_ctx, conn) {
      closes.push(structuredClone(conn));
    },
  };
}

function setup(next: ReturnType<typeof nextHop>) {
  const joint = fakeJoint();
  let ids = 0;
  const pt = passthroughServer({ endpoint: 'firewall', labels: { app: 'firewall' }, netns: '/run/netns/fw', next: serverToClient(next), joint, newId: () => `down-${++ids}` });
  const rec = recorder();
  return { pt, joint, rec, chain: chainServer(pt, rec) };
}

const request = (labels: Record<string, string>): NetworkServiceRequest => ({
  connection: { id: 'up-1', network_service: 'secure-intranet', labels, payload: 'IP', context: {} },
});

describe('passthrough server', () => {
  it('requests the same service with its own labels in place of the client\'s, and passes the IP context back', async () => {
    const next = nextHop(['gateway']);
    const { chain, joint, rec, pt } = setup(next);
    const out = await chain.request(Ctx.background(), request({ version: 'v1.1', podName: 'x' }));
    const down = next.requests[0]!.connection!;
    expect(down.network_service).toBe('secure-intranet');
    expect(down.labels).toEqual({ app: 'firewall' });
    expect(down.network_service_endpoint_name ?? '').toBe('');
    expect(down.id).toBe('down-1');
    expect(down.mechanism?.parameters).toMatchObject({ name: expect.any(String), inodeURL: 'file:///run/netns/fw', bridge: 'br-1' });
    // Upstream: the client's labels kept, the next hop's addresses, its own side on the same bridge.
    const up = rec.requests[0]!.connection!;
    expect(up.labels).toEqual({ version: 'v1.1', podName: 'x' });
    expect(up.context?.ip_context?.dst_ip_addrs).toEqual(['172.16.1.100/32']);
    expect(up.context?.MTU).toBe(1450);
    expect(up.mechanism?.parameters).toMatchObject({ inodeURL: 'file:///run/netns/fw', bridge: 'br-1' });
    expect(up.mechanism?.parameters?.['name']).not.toBe(down.mechanism?.parameters?.['name']);
    expect(out.labels).toEqual({ version: 'v1.1', podName: 'x' });
    expect(joint.open_).toEqual(['br-1']);
    expect(pt.nextHopOf('up-1')).toBe('gateway');
  });

  it('keeps the next hop, the downstream id and the interfaces on a refresh', async () => {
    const next = nextHop(['gw-1', 'gw-2']);
    const { chain, joint, rec, pt } = setup(next);
    await chain.request(Ctx.background(), request({ version: 'v1.1' }));
    await chain.request(Ctx.background(), request({ version: 'v1.1' }));
    await chain.request(Ctx.background(), request({ version: 'v1.1' }));
    expect(next.requests.map((r) => r.connection!.network_service_endpoint_name ?? '')).toEqual(['', 'gw-1', 'gw-1']);
    expect(next.requests.map((r) => r.connection!.id)).toEqual(['down-1', 'down-1', 'down-1']);
    expect(new Set(next.requests.map((r) => r.connection!.mechanism?.parameters?.['name'])).size).toBe(1);
    expect(new Set(rec.requests.map((r) => r.connection!.mechanism?.parameters?.['name'])).size).toBe(1);
    expect(next.requests.every((r) => r.connection!.labels?.['app'] === 'firewall')).toBe(true);
    expect(pt.nextHopOf('up-1')).toBe('gw-1');
    expect(joint.open_).toEqual(['br-1']);
  });

  it('finds the connection it serves from its downstream one, as another hop reports it', async () => {
    const next = nextHop(['gateway']);
    const { chain, pt } = setup(next);
    await chain.request(Ctx.background(), { connection: { ...request({}).connection, path: { index: 1, path_segments: [{ name: 'agent', id: 'a-1' }, { name: 'firewall', id: 'up-1' }] } } });
    const seen = { id: 'hop-9', state: 'DOWN' as const, path: { index: 1, path_segments: [{ name: 'firewall', id: 'down-1' }, { name: 'agent', id: 'hop-9' }] } };
    expect(pt.servedThrough(seen)?.id).toBe('up-1');
    expect(pt.servedThrough(seen)?.path?.path_segments?.[0]?.id).toBe('a-1');
    expect(pt.servedThrough({ ...seen, path: { index: 0, path_segments: [{ name: 'other', id: 'down-1' }] } })).toBeUndefined();
    expect(pt.servedThrough({ ...seen, path: { index: 0, path_segments: [{ name: 'firewall', id: 'down-2' }] } })).toBeUndefined();
  });

  it('records each passage; a restarted agent takes it back (same bridge, interfaces, next hop)', async () => {
    const store = new Map<string, PassthroughRecord>();
    const records: Records<PassthroughRecord> = {
      put: (k, v) => void store.set(k, structuredClone(v)),
      delete: (k) => void store.delete(k),
      claim: (k) => store.get(k),
      leftovers: () => [...store],
    };
    const next = nextHop(['gw-1', 'gw-2']);
    const joint = fakeJoint();
    const make = () => passthroughServer({ endpoint: 'fw', labels: { app: 'fw' }, netns: '/run/netns/fw', next: serverToClient(next), joint, newId: () => `d-${next.requests.length}`, records });
    const first = await chainServer(make()).request(Ctx.background(), request({}));
    expect(store.get('up-1')).toMatchObject({ netns: '/run/netns/fw', bridge: 'br-1', down: { id: 'd-0', network_service_endpoint_name: 'gw-1' } });
    // The restarted agent: a new element, the same records and bridge.
    const again = await chainServer(make()).request(Ctx.background(), request({}));
    expect(next.requests[1]!.connection).toMatchObject({ id: 'd-0', network_service_endpoint_name: 'gw-1' });
    expect(again.mechanism?.parameters).toEqual(first.mechanism?.parameters);
    expect(joint.open_).toEqual(['br-1']);
    // A bridge that is gone is not taken back: a new passage.
    await joint.close('br-1');
    const fresh = make();
    await chainServer(fresh).request(Ctx.background(), request({}));
    expect(joint.open_).toEqual(['br-2']);
    await chainServer(fresh).close(Ctx.background(), { id: 'up-1' });
    expect(store.size).toBe(0);
  });

  it('closes the downstream connection and removes the bridge on close', async () => {
    const next = nextHop(['gateway']);
    const { chain, joint, pt } = setup(next);
    const out = await chain.request(Ctx.background(), request({}));
    await chain.close(Ctx.background(), out);
    expect(next.closes.map((c) => [c.id, c.network_service_endpoint_name])).toEqual([['down-1', 'gateway']]);
    expect(joint.open_).toEqual([]);
    expect(pt.size()).toBe(0);
  });

  it('names the service and its labels when nothing leads on, and leaves no bridge', async () => {
    const next = nextHop([], () => new AgentError('NO_CANDIDATES', 'network service endpoint candidates not found for secure-intranet'));
    const { chain, joint, pt } = setup(next);
    const err = await chain.request(Ctx.background(), request({})).catch((e) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect(err.code).toBe('NO_CANDIDATES');
    expect(err.message).toMatch(/^passthrough endpoint firewall: no next endpoint of secure-intranet for its labels \{app=firewall\}/);
    expect(joint.open_).toEqual([]);
    expect(pt.size()).toBe(0);
  });

  it('closes what it made when the rest of its own chain fails on a first request', async () => {
    const next = nextHop(['gateway']);
    const joint = fakeJoint();
    const pt = passthroughServer({ endpoint: 'fw', labels: {}, netns: '/run/netns/fw', next: serverToClient(next), joint, newId: () => 'd' });
    const chain = chainServer(pt, { request: async () => Promise.reject(new AgentError('DATAPLANE', 'no veth')), close: async () => {} });
    await expect(chain.request(Ctx.background(), request({}))).rejects.toThrow(/no veth/);
    expect(next.closes.map((c) => c.id)).toEqual(['d']);
    expect(joint.open_).toEqual([]);
    expect(pt.size()).toBe(0);
  });

  it('refuses matches that lead back to itself instead of recursing', async () => {
    const joint = fakeJoint();
    let pt: NetworkServiceServer | undefined;
    // The next element is the passthrough itself (the server chain would select it again).
    const loop: NetworkServiceServer = { request: (ctx, req) => chainServer(pt!).request(ctx, { ...req, connection: { ...req.connection, id: `${req.connection?.id}-again` } }), close: async () => {} };
    pt = passthroughServer({ endpoint: 'fw', labels: { app: 'fw' }, netns: '/run/netns/fw', next: serverToClient(loop), joint });
    const err = await chainServer(pt).request(Ctx.background(), request({})).catch((e) => e);
    expect(err.code).toBe('NO_CANDIDATES');
    expect(err.message).toMatch(/lead back to passthrough endpoint fw/);
    expect(joint.open_).toEqual([]);
  });
});
