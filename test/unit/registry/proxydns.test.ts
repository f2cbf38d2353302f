import { describe, expect, it } from 'vitest';
import type { NetworkServiceEndpoint } from '../../../src/api';
import { Ctx } from '../../../src/core/ctx';
import { AgentError } from '../../../src/core/errors';
import { chainNseRegistry, chainNsRegistry, findAll, NseRegistry } from '../../../src/core/registry';
import { proxyDnsNseRegistry, proxyDnsNsRegistry, type DomainRegistry } from '../../../src/registry/common/proxydns';
import { memoryNseRegistry, memoryNsRegistry } from '../../../src/registry/store/memory';

const ctx = () => Ctx.background();

/** A registry of its own (a chain ending in its store), as a dialed registry is. */
function domainRegistry(url: string): DomainRegistry {
  return { ns: chainNsRegistry(memoryNsRegistry()), nse: chainNseRegistry(memoryNseRegistry()), url };
}

function setup(ownDomain?: string, floating = false, proxyOf?: (ctx: Ctx, domain: string) => Promise<string | undefined>) {
  const local = { ns: memoryNsRegistry(), nse: memoryNseRegistry() };
  const remote = domainRegistry('tcp://10.0.0.2:5002');
  const asked: string[] = [];
  const opts = {
    ownDomain,
    floating,
    ...(proxyOf ? { proxyOf } : {}),
    timeoutMs: 200,
    registryOf: async (_ctx: Ctx, domain: string) => {
      asked.push(domain);
      if (domain !== 'b.test') throw new AgentError('DOMAIN_NOT_FOUND', `no registry found for domain ${domain}`);
      return remote;
    },
  };
  return {
    local,
    remote,
    asked,
    ns: chainNsRegistry(proxyDnsNsRegistry(opts), local.ns),
    nse: chainNseRegistry(proxyDnsNseRegistry(opts), local.nse),
  };
}

const nseB: NetworkServiceEndpoint = {
  name: 'nse-1',
  network_service_names: ['icmp'],
  network_service_labels: { icmp: { labels: { app: 'x' } } },
  url: 'tcp://10.0.0.5:5001',
};

describe('proxydns (upstream registry-proxy-dns)', () => {
  it('a find for svc@domain asks that domain with the suffix stripped and restores it in the answers', async () => {
    const s = setup('a.test');
    await s.remote.ns.register(ctx(), { name: 'icmp', payload: 'IP' });
    await s.remote.nse.register(ctx(), nseB);
    const ns = await findAll(s.ns.find(ctx(), { network_service: { name: 'icmp@b.test' } }));
    expect(ns.map((r) => r.network_service?.name)).toEqual(['icmp@b.test']);
    const nses = await findAll(s.nse.find(ctx(), { network_service_endpoint: { network_service_names: ['icmp@b.test'] } }));
    expect(nses).toHaveLength(1);
    const got = nses[0]!.network_service_endpoint!;
    expect(got.name).toBe('nse-1@b.test');
    expect(got.network_service_names).toEqual(['icmp@b.test']);
    expect(Object.keys(got.network_service_labels ?? {})).toEqual(['icmp@b.test']);
    expect(got.url).toBe('tcp://10.0.0.5:5001');
    const byName = await findAll(s.nse.find(ctx(), { network_service_endpoint: { name: 'nse-1@b.test' } }));
    expect(byName.map((r) => r.network_service_endpoint?.name)).toEqual(['nse-1@b.test']);
    expect(s.asked).toEqual(['b.test', 'b.test', 'b.test']);
  });

  it('endpoints of another domain are reached through its nsmgr-proxy when DNS publishes one', async () => {
    const proxied = setup('a.test', false, async (_ctx, domain) => (domain === 'b.test' ? 'tcp://10.0.0.9:5004' : undefined));
    await proxied.remote.nse.register(ctx(), nseB);
    const viaProxy = await findAll(proxied.nse.find(ctx(), { network_service_endpoint: { network_service_names: ['icmp@b.test'] } }));
    expect(viaProxy.map((r) => [r.network_service_endpoint?.name, r.network_service_endpoint?.url])).toEqual([['nse-1@b.test', 'tcp://10.0.0.9:5004']]);
    // the local registry's own endpoints keep their URLs
    await proxied.local.nse.register(ctx(), { ...nseB, name: 'nse-a', url: 'tcp://10.0.0.1:5001' });
    const local = await findAll(proxied.nse.find(ctx(), { network_service_endpoint: { name: 'nse-a' } }));
    expect(local.map((r) => r.network_service_endpoint?.url)).toEqual(['tcp://10.0.0.1:5001']);
    // no proxy published: the endpoint's own URL stands
    const none = setup('a.test', false, async () => undefined);
    await none.remote.nse.register(ctx(), nseB);
    const direct = await findAll(none.nse.find(ctx(), { network_service_endpoint: { network_service_names: ['icmp@b.test'] } }));
    expect(direct.map((r) => r.network_service_endpoint?.url)).toEqual(['tcp://10.0.0.5:5001']);
  });

  it('names without a domain stay local; this domain\'s own suffix is stripped towards the local registry', async () => {
    const s = setup('a.test');
    await s.local.ns.register(ctx(), { name: 'local-svc' });
    expect((await findAll(s.ns.find(ctx(), { network_service: { name: 'local-svc' } }))).length).toBe(1);
    const own = await findAll(s.ns.find(ctx(), { network_service: { name: 'local-svc@a.test' } }));
    expect(own.map((r) => r.network_service?.name)).toEqual(['local-svc@a.test']);
    expect(s.asked).toEqual([]);
  });

  it('drops answers that claim a third domain', async () => {
    const s = setup('a.test');
    await s.remote.nse.register(ctx(), { ...nseB, name: 'evil@c.test' });
    await s.remote.nse.register(ctx(), nseB);
    const nses = await findAll(s.nse.find(ctx(), { network_service_endpoint: { network_service_names: ['icmp@b.test'] } }));
    expect(nses.map((r) => r.network_service_endpoint?.name)).toEqual(['nse-1@b.test']);
  });

  it('refuses registrations naming another domain (FOREIGN_DOMAIN) and strips its own', async () => {
    const s = setup('a.test');
    const err = (await s.nse.register(ctx(), { ...nseB, name: 'nse-1@b.test' }).catch((e) => e)) as AgentError;
    expect(err.code).toBe('FOREIGN_DOMAIN');
    expect(err.message).toContain('nse-1@b.test names domain b.test');
    const svcErr = (await s.nse.register(ctx(), { ...nseB, network_service_names: ['icmp@c.test'] }).catch((e) => e)) as AgentError;
    expect(svcErr.code).toBe('FOREIGN_DOMAIN');
    expect((await s.ns.register(ctx(), { name: 'x@b.test' }).catch((e) => e)).code).toBe('FOREIGN_DOMAIN');
    const stored = await s.nse.register(ctx(), { ...nseB, name: 'mine@a.test', network_service_names: ['icmp@a.test'] });
    expect(stored.name).toBe('mine@a.test');
    const inLocal = await findAll(s.local.nse.find(ctx(), { network_service_endpoint: { name: 'mine' } }));
    expect(inLocal.map((r) => r.network_service_endpoint?.network_service_names)).toEqual([['icmp']]);
  });

  it('floating: an endpoint of name and services @b.test registers into b.test\'s registry, stripped there', async () => {
    const s = setup('a.test', true);
    const nse = { ...nseB, name: 'nse-1@b.test', network_service_names: ['icmp@b.test'], network_service_labels: { 'icmp@b.test': { labels: { app: 'x' } } } };
    await s.ns.register(ctx(), { name: 'icmp@b.test', payload: 'IP' });
    const stored = await s.nse.register(ctx(), nse);
    expect(stored.name).toBe('nse-1@b.test');
    expect(stored.network_service_names).toEqual(['icmp@b.test']);
    const there = await findAll(s.remote.nse.find(ctx(), { network_service_endpoint: { name: 'nse-1' } }));
    expect(there.map((r) => r.network_service_endpoint)).toMatchObject([
      { name: 'nse-1', network_service_names: ['icmp'], network_service_labels: { icmp: { labels: { app: 'x' } } }, url: 'tcp://10.0.0.5:5001' },
    ]);
    expect((await findAll(s.remote.ns.find(ctx(), { network_service: { name: 'icmp' } }))).length).toBe(1);
    expect(await findAll(s.local.nse.find(ctx(), { network_service_endpoint: {} }))).toEqual([]);
    // any client finds it by the floating domain's names
    const found = await findAll(s.nse.find(ctx(), { network_service_endpoint: { network_service_names: ['icmp@b.test'] } }));
    expect(found.map((r) => r.network_service_endpoint?.name)).toEqual(['nse-1@b.test']);
    await s.nse.unregister(ctx(), nse);
    expect(await findAll(s.remote.nse.find(ctx(), { network_service_endpoint: { name: 'nse-1' } }))).toEqual([]);
  });

  it('floating: names of two domains, or a domain DNS does not know, are refused', async () => {
    const s = setup('a.test', true);
    const mixed = (await s.nse.register(ctx(), { ...nseB, name: 'nse-1@b.test', network_service_names: ['icmp'] }).catch((e) => e)) as AgentError;
    expect(mixed.code).toBe('FOREIGN_DOMAIN');
    expect(mixed.message).toContain('its service icmp is not of that domain');
    const svcOnly = (await s.nse.register(ctx(), { ...nseB, network_service_names: ['icmp@b.test'] }).catch((e) => e)) as AgentError;
    expect(svcOnly.code).toBe('FOREIGN_DOMAIN');
    const nx = (await s.nse.register(ctx(), { ...nseB, name: 'nse-1@nx.test', network_service_names: ['icmp@nx.test'] }).catch((e) => e)) as AgentError;
    expect(nx.code).toBe('DOMAIN_NOT_FOUND');
    expect(await findAll(s.remote.nse.find(ctx(), { network_service_endpoint: {} }))).toEqual([]);
  });

  it('a domain DNS does not know: its DOMAIN_NOT_FOUND', async () => {
    const s = setup();
    const err = (await findAll(s.ns.find(ctx(), { network_service: { name: 'icmp@nx.test' } })).catch((e) => e)) as AgentError;
    expect(err.code).toBe('DOMAIN_NOT_FOUND');
  });

  it('a foreign registry that does not answer: UNAVAILABLE naming it, within the timeout', async () => {
    const hanging: NseRegistry = {
      register: async (_c, n) => n,
      unregister: async () => {},
      find: (c) =>
        (async function* () {
          await new Promise<void>((resolve) => c.signal.addEventListener('abort', () => resolve(), { once: true }));
        })(),
    };
    const nse = chainNseRegistry(
      proxyDnsNseRegistry({ timeoutMs: 50, registryOf: async () => ({ ns: memoryNsRegistry(), nse: hanging, url: 'tcp://10.0.0.9:5002' }) }),
      memoryNseRegistry(),
    );
    const err = (await findAll(nse.find(ctx(), { network_service_endpoint: { name: 'x@b.test' } })).catch((e) => e)) as AgentError;
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.message).toContain('domain b.test');
    expect(err.component).toBe('the registry at tcp://10.0.0.9:5002');
  });
});
