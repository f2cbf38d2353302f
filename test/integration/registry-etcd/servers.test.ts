/**
 * Two registry servers (as two agents would run them) over EtcdStores on ONE etcd: what is
 * registered through one is found and watched through the other, and an NSE whose registering
 * agent is gone still expires for everyone, through its etcd lease. Each store answers Find from
 * its mirror, so a change made through one server is found through the other once that one's
 * etcd watch has delivered it (milliseconds), not necessarily at once: the tests wait for it.
 */
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { randomBytes } from 'node:crypto';
import type { NetworkServiceEndpointResponse } from '../../../src/api';
import { fromTimestamp, toTimestamp } from '../../../src/api/time';
import { realClock } from '../../../src/core/clock';
import { Ctx } from '../../../src/core/ctx';
import { findAll } from '../../../src/core/registry';
import { newRegistryServer, RegistryServer } from '../../../src/registry/server';
import { EtcdStore } from '../../../src/registry/store/etcd';
import { type RunningEtcd, haveEtcd, startEtcd } from '../../harness/etcd.mjs';
import { activeHandles, waitFor } from './util';

describe.skipIf(!haveEtcd())('registry servers sharing one etcd', () => {
  let etcd: RunningEtcd;
  let handlesBefore: Map<string, number>;
  const cleanups: (() => void | Promise<void>)[] = [];

  beforeAll(async () => {
    handlesBefore = activeHandles();
    etcd = await startEtcd();
  });
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()?.();
  });
  afterAll(async () => {
    await etcd?.stop();
    await waitFor(
      'handles released',
      () => {
        const now = activeHandles();
        return [...now].every(([k, n]) => n <= (handlesBefore.get(k) ?? 0)) || undefined;
      },
      5000,
    );
  });

  /** Two agents' registry servers on one etcd prefix. */
  function twoServers(opts: { defaultExpiration?: number } = {}): [RegistryServer & { stop(): void }, RegistryServer & { stop(): void }] {
    const prefix = `/reg-${randomBytes(4).toString('hex')}/`;
    const one = () => {
      const store = new EtcdStore({ endpoints: [etcd.endpoint], prefix });
      const reg = newRegistryServer({ clock: realClock, store, defaultExpiration: opts.defaultExpiration });
      let stopped = false;
      const stop = () => {
        if (stopped) return;
        stopped = true;
        reg.close();
        store.close();
      };
      cleanups.push(stop);
      return Object.assign(reg, { stop });
    };
    return [one(), one()];
  }

  /** What `read` gives once `done` accepts it (another agent's change arrives through its watch, within ms). */
  function eventually<T>(read: () => Promise<T>, done: (v: T) => boolean): Promise<T> {
    return waitFor('the other server to see the change', async () => {
      const v = await read();
      return done(v) ? v : undefined;
    }, 2000);
  }

  function liveCtx(): Ctx {
    const ac = new AbortController();
    cleanups.push(() => ac.abort());
    return Ctx.background({ clock: realClock, signal: ac.signal });
  }

  function watchInto(it: AsyncIterable<NetworkServiceEndpointResponse>) {
    const events: [string, boolean][] = [];
    let error: unknown;
    const done = (async () => {
      try {
        for await (const r of it) events.push([r.network_service_endpoint?.name ?? '', Boolean(r.deleted)]);
      } catch (e) {
        error = e;
      }
    })();
    return { events, done, error: () => error };
  }

  it('an NSE and an NS registered through one server are found through the other', async () => {
    const [s1, s2] = twoServers();
    const ctx = liveCtx();
    const resp = await s1.nse.register(ctx, { name: 'nse-1', network_service_names: ['svc'], url: 'tcp://10.0.0.1:5001' });
    await s1.nse.register(ctx, { name: 'nse-2', network_service_names: ['other'], url: 'tcp://10.0.0.2:5001' });
    expect(await s1.ns.register(ctx, { name: 'svc' })).toMatchObject({ name: 'svc', payload: 'IP' });

    const found = await eventually(
      () => findAll(s2.nse.find(ctx, { network_service_endpoint: { network_service_names: ['svc'] } })),
      (f) => f.length > 0,
    );
    expect(found.map((r) => r.network_service_endpoint)).toEqual([resp]);
    expect(fromTimestamp(found[0]?.network_service_endpoint?.initial_registration_time)).toBeGreaterThan(0);
    const nss = await eventually(
      () => findAll(s2.ns.find(ctx, { network_service: { name: 'svc' } })),
      (f) => f.length > 0,
    );
    expect(nss.map((r) => [r.network_service?.name, r.network_service?.payload])).toEqual([['svc', 'IP']]);

    // And back: an unregister through server 2 is seen through server 1.
    await s2.nse.unregister(ctx, { name: 'nse-1' });
    await s2.ns.unregister(ctx, { name: 'svc' });
    const left = await eventually(
      () => findAll(s1.nse.find(ctx, { network_service_endpoint: {} })),
      (f) => f.length < 2,
    );
    expect(left.map((r) => r.network_service_endpoint?.name)).toEqual(['nse-2']);
    expect(await eventually(() => findAll(s1.ns.find(ctx, { network_service: {} })), (f) => f.length === 0)).toEqual([]);
  });

  it('a server finds what was registered or unregistered through it at once (read-your-writes)', async () => {
    const [s1] = twoServers();
    const ctx = liveCtx();
    const names = async (query: { name?: string; network_service_names?: string[] }) =>
      (await findAll(s1.nse.find(ctx, { network_service_endpoint: query }))).map((r) => r.network_service_endpoint?.name).sort();
    for (let i = 0; i < 40; i++) {
      await s1.nse.register(ctx, { name: `nse-${i}`, network_service_names: [`svc-${i % 2}`], url: `tcp://10.0.0.1:${5000 + i}` });
      expect(await names({ name: `nse-${i}` })).toEqual([`nse-${i}`]);
      expect(await names({ network_service_names: [`svc-${i % 2}`] })).toContain(`nse-${i}`);
      if (i % 2) {
        await s1.nse.unregister(ctx, { name: `nse-${i}` });
        expect(await names({ name: `nse-${i}` })).toEqual([]);
        expect(await names({ network_service_names: ['svc-1'] })).toEqual([]);
      }
    }
    await s1.ns.register(ctx, { name: 'svc-0' });
    expect((await findAll(s1.ns.find(ctx, { network_service: { name: 'svc-0' } }))).map((r) => r.network_service?.name)).toEqual(['svc-0']);
    await s1.ns.unregister(ctx, { name: 'svc-0' });
    expect(await findAll(s1.ns.find(ctx, { network_service: { name: 'svc-0' } }))).toEqual([]);
  });

  it('a watcher on server 2 sees an NSE registered through server 1, then its expiry', async () => {
    const [s1, s2] = twoServers({ defaultExpiration: 2000 });
    const ctx = liveCtx();
    const w = watchInto(s2.nse.find(ctx, { network_service_endpoint: { network_service_names: ['svc'] }, watch: true }));
    await s1.nse.register(ctx, { name: 'other', network_service_names: ['nope'], url: 'tcp://10.0.0.9:1' });
    const t0 = Date.now();
    await s1.nse.register(ctx, { name: 'nse-1', network_service_names: ['svc'], url: 'tcp://10.0.0.1:5001' });
    await waitFor('registered', () => w.events.length === 1 || undefined, 5000);
    expect(w.events).toEqual([['nse-1', false]]);
    // Not refreshed: server 1's expire element unregisters it at 2 s.
    await waitFor('expired', () => w.events.length === 2 || undefined, 6000);
    expect(w.events).toEqual([['nse-1', false], ['nse-1', true]]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1900);
    expect(await findAll(s2.nse.find(ctx, { network_service_endpoint: { name: 'nse-1' } }))).toEqual([]);
  });

  it('an NSE whose registering server died still expires for the other server, through its lease', async () => {
    const [s1, s2] = twoServers();
    const ctx = liveCtx();
    const w = watchInto(s2.nse.find(ctx, { network_service_endpoint: {}, watch: true }));
    const t0 = Date.now();
    await s1.nse.register(ctx, {
      name: 'nse-1',
      network_service_names: ['svc'],
      url: 'tcp://10.0.0.1:5001',
      expiration_time: toTimestamp(Date.now() + 1000),
    });
    await waitFor('registered', () => w.events.length === 1 || undefined, 5000);
    s1.stop(); // its expiry timer dies with it; only etcd's lease (TTL 1 s + 1 s) is left
    await waitFor('expired', () => w.events.length === 2 || undefined, 6000);
    expect(w.events).toEqual([['nse-1', false], ['nse-1', true]]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1500);
    expect(await s2.store.nse.get('nse-1')).toBeUndefined();
  });
});
