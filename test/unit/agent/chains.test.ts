/**
 * The agent's chains assembled by src/agent/chains.ts, run in-process without root: a fake
 * KERNEL mechanism, an in-memory registry, and a hosted endpoint whose kind is a recorder.
 * What each element adds shows where it sits: the path segments, the nodeName label that
 * clientinfo adds before the mechanism runs and discover picks the endpoint, the monitor hub.
 */
import { tailNseRegistry } from '../../../src/core/registry';
import { describe, it, expect, afterEach } from 'vitest';
import type { NetworkServiceEndpoint } from '../../../src/api';
import { FakeClock } from '../../../src/core/clock';
import { Ctx } from '../../../src/core/ctx';
import { silentLogger } from '../../../src/core/log';
import { AgentError } from '../../../src/core/errors';
import { findAll } from '../../../src/core/registry';
import { kernelMechanism } from '../../../src/mechanisms/kernel/params';
import { MonitorHub } from '../../../src/networkservice/monitor';
import type { TokenSource } from '../../../src/core/token';
import { newRegistryServer, type RegistryServer } from '../../../src/registry/server';
import { endpointChain, heldClientChain, serverChain } from '../../../src/agent/chains';
import { hostEndpoint, HostedEndpoints, type HostedEndpointsOptions } from '../../../src/agent/endpoints';
import { DEFAULT_ENDPOINT_KIND, ENDPOINT_KINDS } from '../../../src/agent/endpoints/kinds';
import type { EndpointConfig } from '../../../src/agent/config';
import { noRecords } from '../../../src/core/records';
import { recorder } from '../networkservice/helpers';

/** Tokens that expire a minute after they are made; nothing verifies them in-process. */
const tokens: TokenSource = { generate: (now) => ({ token: `token-${now}`, expires: now + 60_000 }) };
const registries: RegistryServer[] = [];
afterEach(() => {
  for (const r of registries.splice(0)) r.close();
});

function registry(clock: FakeClock): RegistryServer {
  const r = newRegistryServer({ clock, log: silentLogger });
  registries.push(r);
  return r;
}

async function setup() {
  const clock = new FakeClock();
  const ctx = Ctx.background({ clock });
  const hub = new MonitorHub();
  const reg = registry(clock);
  const nse: NetworkServiceEndpoint = { name: 'nse-1', network_service_names: ['icmp-responder'], url: 'unix:///nowhere' };
  await reg.ns.register(ctx, { name: 'icmp-responder', payload: 'IP' });
  await reg.nse.register(ctx, nse);
  const kernel = recorder();
  const kind = recorder();
  const endpoint = endpointChain('nse-1', tokens, [kind]);
  const server = serverChain({
    name: 'host-a',
    tokens,
    selfId: () => 'spiffe://nsm.local/nsm-agent/host-a',
    trusts: () => true,
    policy: [],
    hub,
    mechanisms: { KERNEL: kernel },
    registry: reg,
    local: (name) => (name === 'nse-1' ? endpoint : undefined),
  });
  return { clock, ctx, hub, kernel, kind, server };
}

const request = (id: string) => ({
  connection: { id, network_service: 'icmp-responder', path: { index: 0, path_segments: [{ id, name: 'nsc' }] } },
  mechanism_preferences: [kernelMechanism({ netns: '/proc/self/ns/net', ifname: 'nsm-1' })],
});

describe('serverChain', () => {
  it('runs updatepath, clientinfo and the mechanism before discover, and connects to the hosted endpoint', async () => {
    const { ctx, hub, kernel, kind, server } = await setup();
    const conn = await server.request(ctx, request('c1'));

    expect(conn.path?.path_segments?.map((s) => s.name)).toEqual(['nsc', 'host-a', 'nse-1']);
    expect(conn.path?.index).toBe(0);
    expect(conn.network_service_endpoint_name).toBe('nse-1');
    // The mechanism sees the agent's own segment and clientinfo's label, before discover chose.
    const atMechanism = kernel.requests[0]!.connection!;
    expect(atMechanism.path?.index).toBe(1);
    expect(atMechanism.labels).toMatchObject({ nodeName: 'host-a' });
    expect(atMechanism.network_service_endpoint_name ?? '').toBe('');
    // The endpoint kind's elements run inside the endpoint's frame: its own segment, with a token.
    const atKind = kind.requests[0]!.connection!;
    expect(atKind.path?.index).toBe(2);
    expect(atKind.path?.path_segments?.[2]).toMatchObject({ name: 'nse-1' });
    expect(atKind.path?.path_segments?.[2]?.token).toBeTruthy();
    // monitor: the connection as this agent serves it.
    expect(hub.connections().map((c) => c.id)).toEqual([conn.path?.path_segments?.[1]?.id]);

    await server.close(ctx, conn);
    expect(kind.closes).toHaveLength(1);
    expect(hub.connections()).toEqual([]);
  });

  it('without a remote chain, an endpoint that is not hosted here is not reached', async () => {
    const { ctx, kind, server } = await setup();
    const req = request('c2');
    await expect(server.request(ctx, { ...req, connection: { ...req.connection, network_service_endpoint_name: 'elsewhere' } })).rejects.toBeTruthy();
    expect(kind.requests).toHaveLength(0);
  });
});

describe('heldClientChain', () => {
  it('adds the agent client segment and calls the server chain in-process', async () => {
    const { ctx, hub, server } = await setup();
    const client = heldClientChain({ name: 'host-a', tokens, hub, server });
    const conn = await client.request(ctx, { connection: { id: 'h1', network_service: 'icmp-responder' }, mechanism_preferences: request('h1').mechanism_preferences });
    expect(conn.path?.path_segments?.map((s) => s.name)).toEqual(['host-a-nsc', 'host-a', 'nse-1']);
    expect(conn.path?.path_segments?.[0]?.id).toBe('h1');
    expect(hub.connections()).toHaveLength(1);
    await client.close(ctx, conn);
    expect(hub.connections()).toEqual([]);
  });
});

describe('endpoint kinds', () => {
  const cfg = (extra: Partial<EndpointConfig> = {}): EndpointConfig => ({
    name: 'ep-1',
    services: ['icmp-responder'],
    labels: { app: 'x' },
    cidr: '172.16.0.0/24',
    netns: 'host',
    payload: 'IP',
    excludedPrefixes: [],
    ...extra,
  });
  const opts = {
    nodeName: 'host-a',
    url: 'tcp://10.0.0.1:5001',
    tokens,
    ipamRecords: noRecords<never>(),
    log: silentLogger,
    ctx: () => Ctx.background({}),
    nse: tailNseRegistry,
    held: () => {
      throw new Error('no held connections here');
    },
    leasePrefix: () => {
      throw new Error('no vl3-ipam here');
    },
    vl3Records: noRecords<never>(),
    meshMtu: () => undefined,
  };

  it('hosts an endpoint without a kind as the default kind, registered with nodeName and the URL', () => {
    expect(Object.keys(ENDPOINT_KINDS)).toContain(DEFAULT_ENDPOINT_KIND);
    const ep = hostEndpoint(cfg(), opts);
    expect(ep.registration).toEqual({
      name: 'ep-1',
      network_service_names: ['icmp-responder'],
      network_service_labels: { 'icmp-responder': { labels: { app: 'x', nodeName: 'host-a' } } },
      url: 'tcp://10.0.0.1:5001',
    });
    expect(ep.connectionCount()).toBe(0);
  });

  it('refuses a kind nobody registered, naming the endpoint and the kinds known', () => {
    expect(() => hostEndpoint(cfg({ kind: 'nope' }), opts)).toThrow(/endpoint ep-1: unknown kind "nope" \(known: p2p, passthrough, vl3\)/);
    expect(() => hostEndpoint(cfg({ kind: 'toString' }), opts)).toThrow(/unknown kind/);
  });
});

describe('HostedEndpoints', () => {
  it('adds (services and registration), refuses a duplicate, and removes', async () => {
    const clock = new FakeClock();
    const reg = registry(clock);
    const life = new AbortController();
    const ctx = () => Ctx.background({ clock, signal: life.signal });
    const eps = new HostedEndpoints({
      nodeName: 'host-a',
      url: () => 'unix:///run/nsm-agent/agent.sock',
      tokens,
      ipamRecords: () => noRecords(),
      registry: reg,
      heal: false,
      ctx,
      signal: life.signal,
      log: silentLogger,
      held: () => {
        throw new Error('no held connections here');
      },
      leasePrefix: () => {
        throw new Error('no vl3-ipam here');
      },
      vl3Records: () => noRecords(),
      meshMtu: () => undefined,
    });
    const cfg: EndpointConfig = { name: 'ep-1', services: ['svc-a'], labels: {}, cidr: '172.16.0.0/24', netns: 'host', payload: 'IP', excludedPrefixes: [] };
    await eps.addEndpoint(cfg);
    expect(eps.has('ep-1')).toBe(true);
    expect(eps.chain('ep-1')).toBeDefined();
    const nses = await findAll(reg.nse.find(ctx(), { network_service_endpoint: { name: 'ep-1' }, watch: false }));
    expect(nses.map((r) => r.network_service_endpoint?.url)).toEqual(['unix:///run/nsm-agent/agent.sock']);
    const nss = await findAll(reg.ns.find(ctx(), { network_service: { name: 'svc-a' }, watch: false }));
    expect(nss).toHaveLength(1);
    await expect(eps.addEndpoint(cfg)).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });

    await eps.removeEndpoint('ep-1');
    expect(eps.list()).toEqual([]);
    const after = await findAll(reg.nse.find(ctx(), { network_service_endpoint: { name: 'ep-1' }, watch: false }));
    expect(after.filter((r) => !r.deleted)).toEqual([]);
    life.abort();
  });

  it('a floating endpoint whose registry does not answer at start: the start goes on, the registration follows', async () => {
    const clock = new FakeClock();
    const reg = registry(clock);
    const life = new AbortController();
    let refusals = 1;
    const flaky = {
      ns: reg.ns,
      nse: {
        ...reg.nse,
        register: async (c: Ctx, nse: NetworkServiceEndpoint) => {
          if (refusals-- > 0) throw new AgentError('UNAVAILABLE', 'the registry of domain floating.test is down');
          return reg.nse.register(c, nse);
        },
      },
    };
    const common: Omit<HostedEndpointsOptions, 'registry'> = {
      nodeName: 'host-a',
      url: () => 'tcp://10.0.0.2:5001',
      tokens,
      ipamRecords: () => noRecords(),
      heal: false,
      ctx: () => Ctx.background({ clock, signal: life.signal }),
      signal: life.signal,
      log: silentLogger,
      held: () => {
        throw new Error('no held connections here');
      },
      leasePrefix: () => {
        throw new Error('no vl3-ipam here');
      },
      vl3Records: () => noRecords(),
      meshMtu: () => undefined,
    };
    const cfg: EndpointConfig = { name: 'ep-f', services: ['svc-f'], labels: {}, cidr: '172.16.0.0/24', netns: 'host', payload: 'IP', excludedPrefixes: [] };
    // without floating, the failure fails the start
    await expect(new HostedEndpoints({ ...common, registry: flaky }).start([cfg])).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    refusals = 1;
    const eps = new HostedEndpoints({ ...common, registry: flaky, floating: (n) => n === 'ep-f' });
    await eps.start([cfg]);
    expect(eps.has('ep-f')).toBe(true);
    const registered = async () => (await findAll(reg.nse.find(common.ctx(), { network_service_endpoint: { name: 'ep-f' }, watch: false }))).length;
    expect(await registered()).toBe(0);
    const deadline = Date.now() + 5_000;
    while ((await registered()) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await registered()).toBe(1);
    life.abort();
  }, 10_000);
});
