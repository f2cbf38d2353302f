import { describe, it, expect, afterEach } from 'vitest';
import type { NetworkServiceEndpointQuery, NetworkServiceEndpointResponse } from '../../../src/api';
import { FakeClock } from '../../../src/core/clock';
import { findAll, type NseRegistry } from '../../../src/core/registry';
import { newRegistryServer, RegistryServer } from '../../../src/registry/server';
import { nseQueryCache, nsQueryCache } from '../../../src/registry/querycache';
import { flush } from './helpers';

let closers: (() => void)[] = [];
afterEach(() => {
  for (const c of closers.reverse()) c();
  closers = [];
});

/** A registry server (as a remote one would be) behind a counter of the finds that reach it. */
function setup(opts: { idleMs?: number; maxEntries?: number; endWhenCancelled?: boolean } = {}) {
  const clock = new FakeClock();
  const server: RegistryServer = newRegistryServer({ clock });
  const calls = { find: 0, watch: 0 };
  /** Ends the watches open now, as a registry that went away would. */
  const watches: AbortController[] = [];
  const counted: NseRegistry = {
    register: (ctx, nse) => server.nse.register(ctx, nse),
    unregister: (ctx, nse) => server.nse.unregister(ctx, nse),
    find: (ctx, q) => {
      if (!q.watch) {
        calls.find++;
        // as the remote registry client does: a cancelled call's stream just ends
        if (opts.endWhenCancelled && ctx.signal.aborted) return (async function* () {})();
        return server.nse.find(ctx, q);
      }
      calls.watch++;
      const ac = new AbortController();
      watches.push(ac);
      return server.nse.find(ctx.withSignal(ac.signal)[0], q);
    },
  };
  const endWatches = () => watches.splice(0).forEach((ac) => ac.abort());
  const cache = nseQueryCache(counted, { clock, ...opts });
  closers.push(() => server.close(), () => cache.close());
  const ctx = server.ctx();
  const byService = async (name: string) =>
    (await findAll(cache.find(ctx, { network_service_endpoint: { network_service_names: [name] } }))).map((r) => r.network_service_endpoint?.name).sort();
  return { clock, server, cache, calls, ctx, byService, endWatches };
}

describe('registry query cache', () => {
  it('asks the registry once per query, then follows its changes through the watch', async () => {
    const { server, cache, calls, ctx, byService } = setup();
    await server.nse.register(ctx, { name: 'a', network_service_names: ['s'] });
    expect(await byService('s')).toEqual(['a']);
    expect(calls).toEqual({ find: 1, watch: 1 });
    expect(await byService('s')).toEqual(['a']);
    expect(calls.find).toBe(1);

    await server.nse.register(ctx, { name: 'b', network_service_names: ['s'] });
    await server.nse.register(ctx, { name: 'c', network_service_names: ['other'] });
    await flush();
    expect(await byService('s')).toEqual(['a', 'b']);
    await server.nse.unregister(ctx, { name: 'a' });
    await flush();
    expect(await byService('s')).toEqual(['b']);
    expect(calls).toEqual({ find: 1, watch: 1 });

    // another query is another entry
    expect(await byService('other')).toEqual(['c']);
    expect(calls).toEqual({ find: 2, watch: 2 });
    expect(cache.size).toBe(2);
  });

  it('a first find whose caller gives up does not cut the registry call short for the finds that share it', async () => {
    const { server, calls, ctx, cache, byService } = setup({ endWhenCancelled: true });
    await server.nse.register(ctx, { name: 'a', network_service_names: ['s'] });
    const [cancelled, release] = ctx.withSignal(AbortSignal.abort());
    const first = findAll(cache.find(cancelled, { network_service_endpoint: { network_service_names: ['s'] } }));
    const shared = byService('s');
    expect((await first).map((r) => r.network_service_endpoint?.name)).toEqual(['a']);
    release();
    expect(await shared).toEqual(['a']);
    expect(await byService('s')).toEqual(['a']);
    expect(calls.find).toBe(1);
    expect(cache.size).toBe(1);
  });

  it('hands out copies: what a caller changes does not change the entry', async () => {
    const { server, ctx, cache } = setup();
    await server.nse.register(ctx, { name: 'a', network_service_names: ['s'], url: 'tcp://10.0.0.1:5001' });
    const q = { network_service_endpoint: { network_service_names: ['s'] } };
    const first = await findAll(cache.find(ctx, q));
    first[0]!.network_service_endpoint!.url = 'tcp://changed:1';
    const again = await findAll(cache.find(ctx, q));
    expect(again[0]!.network_service_endpoint!.url).toBe('tcp://10.0.0.1:5001');
  });

  it('shares the first registry call between concurrent finds of one query', async () => {
    const { server, calls, ctx, byService } = setup();
    await server.nse.register(ctx, { name: 'a', network_service_names: ['s'] });
    const all = await Promise.all([byService('s'), byService('s'), byService('s')]);
    expect(all).toEqual([['a'], ['a'], ['a']]);
    expect(calls).toEqual({ find: 1, watch: 1 });
  });

  it('passes watch finds through', async () => {
    const { calls, ctx, cache } = setup();
    const ac = new AbortController();
    const [wctx, done] = ctx.withSignal(ac.signal);
    const it = cache.find(wctx, { network_service_endpoint: {}, watch: true })[Symbol.asyncIterator]();
    const first = it.next();
    await flush();
    expect(calls).toEqual({ find: 0, watch: 1 });
    ac.abort();
    await first.catch(() => {});
    done();
    expect(cache.size).toBe(0);
  });

  it('applies changes the watch delivered before the registry answered, after that answer', async () => {
    // A registry whose answer is late: the watch reports a deletion first.
    let answer!: () => void;
    const late = new Promise<void>((r) => (answer = r));
    const inner: NseRegistry = {
      register: async (_c, nse) => nse,
      unregister: async () => {},
      find: (_ctx, q: NetworkServiceEndpointQuery) =>
        (async function* (): AsyncIterable<NetworkServiceEndpointResponse> {
          if (q.watch) {
            yield { network_service_endpoint: { name: 'a', network_service_names: ['s'] }, deleted: true };
            yield { network_service_endpoint: { name: 'c', network_service_names: ['s'] } };
            await new Promise(() => {}); // open until cancelled: the cache ends the generator
          }
          await late;
          yield { network_service_endpoint: { name: 'a', network_service_names: ['s'] } };
          yield { network_service_endpoint: { name: 'b', network_service_names: ['s'] } };
        })(),
    };
    const cache = nseQueryCache(inner);
    closers.push(() => cache.close());
    const { ctx } = setup();
    const q = { network_service_endpoint: { network_service_names: ['s'] } };
    const first = findAll(cache.find(ctx, q));
    await flush();
    answer();
    expect((await first).map((r) => r.network_service_endpoint?.name).sort()).toEqual(['b', 'c']);
  });

  it('drops an entry whose watch ends, and asks the registry again', async () => {
    const { server, cache, calls, ctx, byService, endWatches } = setup();
    await server.nse.register(ctx, { name: 'a', network_service_names: ['s'] });
    expect(await byService('s')).toEqual(['a']);
    endWatches();
    await flush();
    expect(cache.size).toBe(0);
    expect(await byService('s')).toEqual(['a']);
    expect(calls).toEqual({ find: 2, watch: 2 });
  });

  it('forgets a failed first call (its error reaches the caller), and queries not asked for a while', async () => {
    const clock = new FakeClock();
    let fail = true;
    const inner: NseRegistry = {
      register: async (_c, nse) => nse,
      unregister: async () => {},
      find: (ctx, q) =>
        (async function* (): AsyncIterable<NetworkServiceEndpointResponse> {
          if (q.watch) {
            await new Promise<void>((r) => ctx.signal.addEventListener('abort', () => r()));
            return;
          }
          if (fail) throw new Error('registry down');
          yield { network_service_endpoint: { name: 'a' } };
        })(),
    };
    const cache = nseQueryCache(inner, { clock, idleMs: 1000 });
    closers.push(() => cache.close());
    const { ctx } = setup();
    const q = { network_service_endpoint: { network_service_names: ['s'] } };
    await expect(findAll(cache.find(ctx, q))).rejects.toThrow(/registry down/);
    expect(cache.size).toBe(0);
    fail = false;
    expect(await findAll(cache.find(ctx, q))).toHaveLength(1);
    expect(cache.size).toBe(1);
    clock.advance(1000);
    await new Promise((r) => setTimeout(r, 1100)); // the sweep runs every max(1 s, idle / 2)
    expect(cache.size).toBe(0);
  });

  it('keeps at most maxEntries queries; others pass through', async () => {
    const { server, cache, calls, ctx, byService } = setup({ maxEntries: 1 });
    await server.nse.register(ctx, { name: 'a', network_service_names: ['s', 't'] });
    expect(await byService('s')).toEqual(['a']);
    expect(await byService('t')).toEqual(['a']);
    expect(await byService('t')).toEqual(['a']);
    expect(cache.size).toBe(1);
    expect(calls).toEqual({ find: 3, watch: 1 });
  });

  it('caches network service finds the same way', async () => {
    const clock = new FakeClock();
    const server = newRegistryServer({ clock });
    let finds = 0;
    const cache = nsQueryCache({ ...server.ns, find: (c, q) => (q.watch || finds++, server.ns.find(c, q)) }, { clock });
    closers.push(() => server.close(), () => cache.close());
    const ctx = server.ctx();
    await server.ns.register(ctx, { name: 's', payload: 'IP' });
    const names = async () => (await findAll(cache.find(ctx, { network_service: { name: 's' } }))).map((r) => r.network_service?.payload);
    expect(await names()).toEqual(['IP']);
    await server.ns.register(ctx, { name: 's', payload: 'ETHERNET' });
    await flush();
    expect(await names()).toEqual(['ETHERNET']);
    expect(finds).toBe(1);
  });
});
