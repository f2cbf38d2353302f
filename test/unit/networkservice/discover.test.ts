import { describe, it, expect } from 'vitest';
import type { NetworkService, NetworkServiceEndpoint, NetworkServiceEndpointQuery, NetworkServiceQuery } from '../../../src/api';
import { toTimestamp } from '../../../src/api/time';
import { Ctx } from '../../../src/core/ctx';
import { AgentError } from '../../../src/core/errors';
import { chainServer, nextServer, NetworkServiceServer } from '../../../src/core/networkservice';
import type { NsRegistry, NseRegistry } from '../../../src/core/registry';
import { discoverServer, candidates } from '../../../src/networkservice/discover';
import { roundRobinServer } from '../../../src/networkservice/roundrobin';
import { clientURL, withClientURL } from '../../../src/networkservice/clienturl';
import { fakeCtx, recorder } from './helpers';

/** In-memory registries with exact-name and service-name queries, counting finds. */
function registries(services: NetworkService[], endpoints: NetworkServiceEndpoint[]) {
  const calls = { ns: [] as NetworkServiceQuery[], nse: [] as NetworkServiceEndpointQuery[] };
  const ns: NsRegistry = {
    register: async (_c, s) => s,
    unregister: async () => {},
    async *find(_ctx, q) {
      calls.ns.push(q);
      for (const s of services) {
        if (q.network_service?.name && q.network_service.name !== s.name) continue;
        if (q.network_service?.payload && q.network_service.payload !== s.payload) continue;
        yield { network_service: s };
      }
    },
  };
  const nse: NseRegistry = {
    register: async (_c, e) => e,
    unregister: async () => {},
    async *find(_ctx, q) {
      calls.nse.push(q);
      const want = q.network_service_endpoint;
      for (const e of endpoints) {
        if (want?.name && want.name !== e.name) continue;
        if (want?.network_service_names?.length && !want.network_service_names.every((n) => e.network_service_names?.includes(n))) continue;
        yield { network_service_endpoint: e };
      }
    },
  };
  return { ns, nse, calls };
}

const endpoint = (name: string, extra: Partial<NetworkServiceEndpoint> = {}): NetworkServiceEndpoint => ({
  name,
  network_service_names: ['icmp'],
  network_service_labels: { icmp: { labels: { app: 'icmp' } } },
  url: `tcp://${name}:5001`,
  ...extra,
});

/** Records the endpoint name and client URL each attempt got; fails for the names listed. */
function dialer(failing: Set<string>, code: AgentError['code'] = 'UNAVAILABLE') {
  const tried: string[] = [];
  const el: NetworkServiceServer & { tried: string[] } = {
    tried,
    async request(ctx, req) {
      const name = req.connection?.network_service_endpoint_name ?? '';
      tried.push(`${name} ${clientURL(ctx)?.href ?? '-'}`);
      if (failing.has(name)) throw new AgentError(code, `dial ${name} failed`);
      return nextServer(ctx).request(ctx, req);
    },
    close: (ctx, conn) => nextServer(ctx).close(ctx, conn),
  };
  return el;
}

describe('discover', () => {
  it('copies the service payload and puts the live, matching endpoints in the ctx', async () => {
    const { ctx, clock } = fakeCtx();
    const reg = registries(
      [{ name: 'icmp', payload: 'ETHERNET' }],
      [
        endpoint('live', { expiration_time: toTimestamp(clock.now() + 1000) }),
        endpoint('expired', { expiration_time: toTimestamp(clock.now() - 1) }),
        endpoint('forever'),
        endpoint('other', { network_service_names: ['other'] }),
      ],
    );
    const rec = recorder();
    await chainServer(discoverServer(reg.ns, reg.nse), rec).request(ctx, { connection: { id: 'a', network_service: 'icmp' } });
    expect(rec.requests[0]!.connection!.payload).toBe('ETHERNET');
    expect(candidates(rec.ctxs[0]!)?.endpoints.map((e) => e.name)).toEqual(['live', 'forever']);
    expect(candidates(rec.ctxs[0]!)?.networkService.name).toBe('icmp');
  });

  it('fails for an unknown service and for a service without matching endpoints', async () => {
    const reg = registries(
      [{ name: 'icmp', matches: [{ routes: [{ destination_selector: { app: 'nothing' } }] }] }],
      [endpoint('a')],
    );
    const chain = chainServer(discoverServer(reg.ns, reg.nse));
    await expect(chain.request(Ctx.background(), { connection: { id: 'a', network_service: 'nope' } })).rejects.toMatchObject({
      code: 'SERVICE_NOT_FOUND',
      message: 'network service nope is not found',
    });
    await expect(chain.request(Ctx.background(), { connection: { id: 'a', network_service: 'icmp' } })).rejects.toMatchObject({
      code: 'NO_CANDIDATES',
      message: 'network service endpoint candidates not found for icmp',
    });
  });

  it('looks up the service and its endpoints at once; a failed endpoint lookup fails the request', async () => {
    const started: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow = registries([{ name: 'icmp' }], [endpoint('a')]);
    const ns: NsRegistry = {
      ...slow.ns,
      async *find(c, q) {
        started.push('ns');
        await gate; // held until the endpoint lookup has started too
        yield* slow.ns.find(c, q);
      },
    };
    const nse: NseRegistry = {
      ...slow.nse,
      async *find(c, q) {
        started.push('nse');
        release();
        yield* slow.nse.find(c, q);
      },
    };
    const rec = recorder();
    await chainServer(discoverServer(ns, nse), rec).request(Ctx.background(), { connection: { id: 'a', network_service: 'icmp' } });
    expect(started).toEqual(['ns', 'nse']);
    expect(candidates(rec.ctxs[0]!)?.endpoints.map((e) => e.name)).toEqual(['a']);
    const broken: NseRegistry = {
      ...slow.nse,
      // eslint-disable-next-line require-yield
      async *find() {
        throw new AgentError('UNAVAILABLE', 'registry down');
      },
    };
    await expect(chainServer(discoverServer(slow.ns, broken)).request(Ctx.background(), { connection: { id: 'a', network_service: 'icmp' } })).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    // the service's own error wins over the endpoints'
    await expect(chainServer(discoverServer(slow.ns, broken)).request(Ctx.background(), { connection: { id: 'a', network_service: 'nope' } })).rejects.toMatchObject({ code: 'SERVICE_NOT_FOUND' });
  });

  it('uses the endpoint named in the request, or fails NOT_FOUND if it is gone', async () => {
    const reg = registries([{ name: 'icmp' }], [endpoint('a'), endpoint('b')]);
    const rec = recorder();
    const chain = chainServer(discoverServer(reg.ns, reg.nse), rec);
    await chain.request(Ctx.background(), { connection: { id: 'x', network_service: 'icmp', network_service_endpoint_name: 'b' } });
    expect(clientURL(rec.ctxs[0]!)?.href).toBe('tcp://b:5001');
    expect(candidates(rec.ctxs[0]!)).toBeUndefined();
    await expect(
      chain.request(Ctx.background(), { connection: { id: 'x', network_service: 'icmp', network_service_endpoint_name: 'gone' } }),
    ).rejects.toMatchObject({ code: 'NOT_FOUND', message: 'network service endpoint gone is not found' });
  });

  it('an endpoint hosted here under another domain\'s name (floating) is not looked up; others are', async () => {
    const reg = registries([], [endpoint('b')]);
    const rec = recorder();
    const hosted = (n: string) => (n === 'nse-b@floating.test' || n === 'b' ? { name: n, url: 'tcp://10.0.0.2:5001' } : undefined);
    const chain = chainServer(discoverServer(reg.ns, reg.nse, { hosted }), rec);
    const conn = { id: 'x', network_service: 'svc@floating.test', network_service_endpoint_name: 'nse-b@floating.test' };
    await chain.request(Ctx.background(), { connection: conn });
    expect(clientURL(rec.ctxs[0]!)?.href).toBe('tcp://10.0.0.2:5001');
    await chain.close(Ctx.background(), conn);
    expect(reg.calls.nse).toHaveLength(0);
    // a hosted endpoint of this domain is found in the registry as before
    await chain.request(Ctx.background(), { connection: { id: 'y', network_service: 'icmp', network_service_endpoint_name: 'b' } });
    expect(reg.calls.nse).toHaveLength(1);
  });

  it('skips discovery when a client URL is already chosen', async () => {
    const reg = registries([], []);
    const rec = recorder();
    const ctx = withClientURL(Ctx.background(), 'unix:///run/nsm/nsm.sock');
    await chainServer(discoverServer(reg.ns, reg.nse), rec).request(ctx, { connection: { id: 'a', network_service: 'x' } });
    expect(reg.calls.ns).toHaveLength(0);
    expect(rec.requests).toHaveLength(1);
  });

  it('Close finds the URL of the connection endpoint, and goes on without it if it is gone', async () => {
    const reg = registries([{ name: 'icmp' }], [endpoint('a')]);
    const rec = recorder();
    const chain = chainServer(discoverServer(reg.ns, reg.nse), rec);
    await chain.close(Ctx.background(), { id: 'x', network_service_endpoint_name: 'a' });
    await chain.close(Ctx.background(), { id: 'y', network_service_endpoint_name: 'gone' });
    await chain.close(Ctx.background(), { id: 'z' });
    expect(rec.closes.map((c) => c.id)).toEqual(['x', 'y', 'z']);
    expect(clientURL(rec.ctxs[0]!)?.href).toBe('tcp://a:5001');
    expect(clientURL(rec.ctxs[1]!)).toBeUndefined();
  });

  it('matches with the request labels, nodeName template included', async () => {
    const reg = registries(
      [{ name: 'icmp', matches: [{ routes: [{ destination_selector: { nodeName: '{{.nodeName}}' } }] }] }],
      [
        endpoint('on-1', { network_service_labels: { icmp: { labels: { nodeName: 'h1' } } } }),
        endpoint('on-2', { network_service_labels: { icmp: { labels: { nodeName: 'h2' } } } }),
      ],
    );
    const rec = recorder();
    await chainServer(discoverServer(reg.ns, reg.nse), rec).request(Ctx.background(), {
      connection: { id: 'a', network_service: 'icmp', labels: { nodeName: 'h2' } },
    });
    expect(candidates(rec.ctxs[0]!)?.endpoints.map((e) => e.name)).toEqual(['on-2']);
  });
});

describe('roundrobin', () => {
  const reg = () => registries([{ name: 'icmp' }], [endpoint('a'), endpoint('b'), endpoint('c')]);

  it('rotates through the candidates, one per request', async () => {
    const r = reg();
    const d = dialer(new Set());
    const chain = chainServer(discoverServer(r.ns, r.nse), roundRobinServer(), d);
    for (let i = 0; i < 4; i++) {
      const conn = await chain.request(Ctx.background(), { connection: { id: `c${i}`, network_service: 'icmp' } });
      expect(conn.network_service_endpoint_name).toBe(['a', 'b', 'c', 'a'][i]);
    }
    expect(d.tried).toEqual(['a tcp://a:5001', 'b tcp://b:5001', 'c tcp://c:5001', 'a tcp://a:5001']);
  });

  it('fails over to the next candidate', async () => {
    const r = reg();
    const d = dialer(new Set(['a']));
    const chain = chainServer(discoverServer(r.ns, r.nse), roundRobinServer(), d);
    const conn = await chain.request(Ctx.background(), { connection: { id: 'c', network_service: 'icmp' } });
    expect(conn.network_service_endpoint_name).toBe('b');
    expect(d.tried.map((t) => t.split(' ')[0])).toEqual(['a', 'b']);
    // The counter moved past both tries.
    await chain.request(Ctx.background(), { connection: { id: 'd', network_service: 'icmp' } });
    expect(d.tried.at(-1)!.split(' ')[0]).toBe('c');
  });

  it('tries each candidate once and joins the reasons', async () => {
    const r = reg();
    const chain = chainServer(discoverServer(r.ns, r.nse), roundRobinServer(), dialer(new Set(['a', 'b', 'c'])));
    const err = (await chain.request(Ctx.background(), { connection: { id: 'c', network_service: 'icmp' } }).catch((e: unknown) => e)) as AgentError;
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.message).toBe('all candidates have failed: a: dial a failed; b: dial b failed; c: dial c failed');

    const same = chainServer(discoverServer(r.ns, r.nse), roundRobinServer(), dialer(new Set(['a', 'b', 'c']), 'POOL_EXHAUSTED'));
    await expect(same.request(Ctx.background(), { connection: { id: 'c', network_service: 'icmp' } })).rejects.toMatchObject({
      code: 'POOL_EXHAUSTED',
    });
  });

  it('keeps one counter per network service', async () => {
    const r = registries(
      [{ name: 'icmp' }, { name: 'other' }],
      [endpoint('a'), endpoint('b'), endpoint('x', { network_service_names: ['other'] }), endpoint('y', { network_service_names: ['other'] })],
    );
    const chain = chainServer(discoverServer(r.ns, r.nse), roundRobinServer(), dialer(new Set()));
    const pick = async (ns: string) =>
      (await chain.request(Ctx.background(), { connection: { id: 'c', network_service: ns } })).network_service_endpoint_name;
    expect([await pick('icmp'), await pick('other'), await pick('icmp'), await pick('other')]).toEqual(['a', 'x', 'b', 'y']);
  });

  it('passes through when the client URL is already set, and needs discover otherwise', async () => {
    const d = dialer(new Set());
    await chainServer(roundRobinServer(), d).request(withClientURL(Ctx.background(), 'tcp://fixed:1'), {
      connection: { id: 'c', network_service_endpoint_name: 'fixed' },
    });
    expect(d.tried).toEqual(['fixed tcp://fixed:1']);
    await expect(chainServer(roundRobinServer()).request(Ctx.background(), { connection: { id: 'c' } })).rejects.toMatchObject({
      code: 'INTERNAL',
    });
  });
});
