import { describe, it, expect, afterEach } from 'vitest';
import { FakeClock } from '../../../src/core/clock';
import { Ctx } from '../../../src/core/ctx';
import { findAll, chainNseRegistry, chainNsRegistry } from '../../../src/core/registry';
import { fromTimestamp, toTimestamp } from '../../../src/api/time';
import { newRegistryServer, RegistryServer } from '../../../src/registry/server';
import { clientInfoNseRegistry } from '../../../src/registry/common/clientinfo';
import { setPayloadNsRegistry } from '../../../src/registry/common/setpayload';
import { memoryNsRegistry } from '../../../src/registry/store/memory';
import { collect, flush } from './helpers';

const MIN = 60_000;
let servers: RegistryServer[] = [];
afterEach(() => {
  for (const s of servers) s.close();
  servers = [];
});

function setup(opts: { nodeName?: string; defaultExpiration?: number } = {}) {
  const clock = new FakeClock();
  const server = newRegistryServer({ clock, ...opts });
  servers.push(server);
  return { clock, server, ctx: server.ctx() };
}

const names = async (server: RegistryServer, ctx: Ctx) =>
  (await findAll(server.nse.find(ctx, { network_service_endpoint: {} }))).map((r) => r.network_service_endpoint?.name);

describe('registry server NSE chain', () => {
  it('sets expiration_time to now + default expiration', async () => {
    const { clock, server, ctx } = setup();
    const resp = await server.nse.register(ctx, { name: 'a' });
    expect(fromTimestamp(resp.expiration_time)).toBe(clock.now() + MIN);
  });

  it('keeps an earlier expiration_time the NSE sent, caps a later one', async () => {
    const { clock, server, ctx } = setup();
    const early = clock.now() + 10_000;
    const r1 = await server.nse.register(ctx, { name: 'a', expiration_time: toTimestamp(early) });
    expect(fromTimestamp(r1.expiration_time)).toBe(early);
    const r2 = await server.nse.register(ctx, { name: 'b', expiration_time: toTimestamp(clock.now() + 10 * MIN) });
    expect(fromTimestamp(r2.expiration_time)).toBe(clock.now() + MIN);

    // The earlier time the NSE chose is also when it goes.
    clock.advance(10_000);
    await flush();
    expect(await names(server, ctx)).toEqual(['b']);
  });

  it('at expiry the entry is gone and watchers get deleted=true', async () => {
    const { clock, server, ctx } = setup();
    const ac = new AbortController();
    const [wctx] = ctx.withSignal(ac.signal);
    const w = collect(server.nse.find(wctx, { network_service_endpoint: { name: 'a' }, watch: true }));
    await server.nse.register(ctx, { name: 'a' });
    await flush();
    expect(w.items.map((r) => r.deleted)).toEqual([false]);

    clock.advance(MIN - 1);
    await flush();
    expect(await names(server, ctx)).toEqual(['a']);
    expect(w.items).toHaveLength(1);

    clock.advance(1);
    await flush();
    expect(await names(server, ctx)).toEqual([]);
    expect(w.items.map((r) => [r.network_service_endpoint?.name, r.deleted])).toEqual([
      ['a', false],
      ['a', true],
    ]);
    ac.abort();
    await w.done;
  });

  it('a refresh re-arms the expiry', async () => {
    const { clock, server, ctx } = setup();
    await server.nse.register(ctx, { name: 'a' });
    clock.advance(40_000);
    await server.nse.register(ctx, { name: 'a' });
    clock.advance(40_000); // 80 s after the first register, 40 s after the refresh
    await flush();
    expect(await names(server, ctx)).toEqual(['a']);
    clock.advance(20_000);
    await flush();
    expect(await names(server, ctx)).toEqual([]);
    expect(clock.pending()).toBe(0);
  });

  it('unregister disarms the expiry timer', async () => {
    const { clock, server, ctx } = setup();
    await server.nse.register(ctx, { name: 'a' });
    expect(clock.pending()).toBe(1);
    await server.nse.unregister(ctx, { name: 'a' });
    expect(clock.pending()).toBe(0);
  });

  it('find skips entries already past their expiration_time', async () => {
    const { clock, server, ctx } = setup();
    await server.nse.register(ctx, { name: 'live' });
    // An entry written by someone else (e.g. another registry over a shared store), stale.
    await server.store.nse.put({ name: 'stale', expiration_time: toTimestamp(clock.now() - 1) });
    expect(await names(server, ctx)).toEqual(['live']);
  });

  it('sets initial_registration_time on the first register and keeps it on refresh', async () => {
    const { clock, server, ctx } = setup();
    const t0 = clock.now();
    const r1 = await server.nse.register(ctx, { name: 'a' });
    expect(fromTimestamp(r1.initial_registration_time)).toBe(t0);
    clock.advance(40_000);
    const r2 = await server.nse.register(ctx, { name: 'a' }); // refresh without the time
    expect(fromTimestamp(r2.initial_registration_time)).toBe(t0);
    const r3 = await server.nse.register(ctx, { name: 'a', initial_registration_time: toTimestamp(t0 + 5) });
    expect(fromTimestamp(r3.initial_registration_time)).toBe(t0);
    const [found] = await findAll(server.nse.find(ctx, { network_service_endpoint: { name: 'a' } }));
    expect(fromTimestamp(found?.network_service_endpoint?.initial_registration_time)).toBe(t0);

    // After an expiry the next registration starts afresh.
    clock.advance(MIN);
    await flush();
    const r4 = await server.nse.register(ctx, { name: 'a' });
    expect(fromTimestamp(r4.initial_registration_time)).toBe(clock.now());
  });

  it('with a nodeName, adds it to every service label set without overwriting', async () => {
    const { server, ctx } = setup({ nodeName: 'node-1' });
    const resp = await server.nse.register(ctx, {
      name: 'a',
      network_service_names: ['s1', 's2', 's3'],
      network_service_labels: { s1: { labels: { app: 'x' } }, s2: { labels: { nodeName: 'mine' } } },
    });
    expect(resp.network_service_labels).toEqual({
      s1: { labels: { app: 'x', nodeName: 'node-1' } },
      s2: { labels: { nodeName: 'mine' } },
    });
  });

  it('close() disarms every expiry timer', async () => {
    const { clock, server, ctx } = setup();
    await server.nse.register(ctx, { name: 'a' });
    await server.nse.register(ctx, { name: 'b' });
    server.close();
    expect(clock.pending()).toBe(0);
  });
});

describe('registry server NS chain', () => {
  it('an empty payload becomes IP; a given one is kept', async () => {
    const { server, ctx } = setup();
    expect((await server.ns.register(ctx, { name: 'x' })).payload).toBe('IP');
    expect((await server.ns.register(ctx, { name: 'y', payload: 'ETHERNET' })).payload).toBe('ETHERNET');
    const found = await findAll(server.ns.find(ctx, { network_service: { payload: 'IP' } }));
    expect(found.map((r) => r.network_service?.name)).toEqual(['x']);
  });

  it('setpayload composes with any store element', async () => {
    const ns = chainNsRegistry(setPayloadNsRegistry('ETHERNET'), memoryNsRegistry());
    const ctx = Ctx.background({ clock: new FakeClock() });
    expect((await ns.register(ctx, { name: 'z' })).payload).toBe('ETHERNET');
  });
});

describe('clientinfo element', () => {
  it('does not mutate the caller object and leaves NSEs without labels alone', async () => {
    const chain = chainNseRegistry(clientInfoNseRegistry({ nodeName: 'n', clusterName: 'c' }));
    const ctx = Ctx.background();
    const nse = { name: 'a', network_service_labels: { s: { labels: { k: 'v' } } } };
    const out = await chain.register(ctx, nse);
    expect(out.network_service_labels).toEqual({ s: { labels: { k: 'v', nodeName: 'n', clusterName: 'c' } } });
    expect(nse.network_service_labels.s.labels).toEqual({ k: 'v' });
    expect((await chain.register(ctx, { name: 'b' })).network_service_labels).toEqual({});
  });
});
