import { describe, it, expect } from 'vitest';
import { MemoryStore, memoryNsRegistry, memoryNseRegistry } from '../../../src/registry/store/memory';
import { findAll } from '../../../src/core/registry';
import { AgentError } from '../../../src/core/errors';
import { collect, fakeCtx, flush } from './helpers';

describe('memory store elements', () => {
  it('registers (upsert), finds by query and unregisters NSEs', async () => {
    const { ctx } = fakeCtx();
    const reg = memoryNseRegistry();
    await reg.register(ctx, { name: 'a', network_service_names: ['s1'], url: 'tcp://1.1.1.1:1' });
    await reg.register(ctx, { name: 'b', network_service_names: ['s2'], url: 'tcp://2.2.2.2:1' });
    await reg.register(ctx, { name: 'a', network_service_names: ['s1'], url: 'tcp://1.1.1.9:1' });

    const all = await findAll(reg.find(ctx, { network_service_endpoint: {} }));
    expect(all.map((r) => r.network_service_endpoint?.name).sort()).toEqual(['a', 'b']);
    const s1 = await findAll(reg.find(ctx, { network_service_endpoint: { network_service_names: ['s1'] } }));
    expect(s1.map((r) => r.network_service_endpoint?.url)).toEqual(['tcp://1.1.1.9:1']);

    await reg.unregister(ctx, { name: 'a' });
    await reg.unregister(ctx, { name: 'unknown' }); // not an error
    const left = await findAll(reg.find(ctx, { network_service_endpoint: {} }));
    expect(left.map((r) => r.network_service_endpoint?.name)).toEqual(['b']);
  });

  it('rejects an empty NSE or NS name with INVALID_ARGUMENT', async () => {
    const { ctx } = fakeCtx();
    await expect(memoryNseRegistry().register(ctx, { name: '' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(memoryNsRegistry().register(ctx, {})).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('keeps copies: mutating what went in or came out does not change the store', async () => {
    const { ctx } = fakeCtx();
    const reg = memoryNseRegistry();
    const nse = { name: 'a', network_service_names: ['s1'] };
    const out = await reg.register(ctx, nse);
    nse.network_service_names.push('evil');
    out.network_service_names?.push('evil2');
    const [found] = await findAll(reg.find(ctx, { network_service_endpoint: { name: 'a' } }));
    expect(found?.network_service_endpoint?.network_service_names).toEqual(['s1']);
  });

  it('NS find applies the NS rules', async () => {
    const { ctx } = fakeCtx();
    const reg = memoryNsRegistry();
    await reg.register(ctx, { name: 'x', payload: 'IP' });
    await reg.register(ctx, { name: 'y', payload: 'ETHERNET' });
    const eth = await findAll(reg.find(ctx, { network_service: { payload: 'ETHERNET' } }));
    expect(eth.map((r) => r.network_service?.name)).toEqual(['y']);
  });

  it('watch yields current matches, then register and unregister changes of matching entries, until aborted', async () => {
    const { ctx, ac } = fakeCtx();
    const reg = memoryNseRegistry();
    await reg.register(ctx, { name: 'a', network_service_names: ['s'] });
    await reg.register(ctx, { name: 'other', network_service_names: ['t'] });

    const w = collect(reg.find(ctx, { network_service_endpoint: { network_service_names: ['s'] }, watch: true }));
    await flush();
    expect(w.items.map((r) => [r.network_service_endpoint?.name, r.deleted])).toEqual([['a', false]]);

    await reg.register(ctx, { name: 'b', network_service_names: ['s'] });
    await reg.register(ctx, { name: 'other2', network_service_names: ['t'] });
    await reg.register(ctx, { name: 'a', network_service_names: ['s'], url: 'u2' });
    await reg.unregister(ctx, { name: 'b' });
    await reg.unregister(ctx, { name: 'other' });
    await flush();
    expect(w.items.map((r) => [r.network_service_endpoint?.name, r.deleted])).toEqual([
      ['a', false],
      ['b', false],
      ['a', false],
      ['b', true],
    ]);
    expect(w.ended()).toBe(false);

    ac.abort();
    await w.done;
    expect(w.ended()).toBe(true);
    expect(w.error()).toBeUndefined();
  });

  it('a watcher that falls behind is ended with an error and does not block registration', async () => {
    const { ctx } = fakeCtx();
    const store = new MemoryStore({ watchBuffer: 3 });
    const reg = memoryNseRegistry(store);
    await reg.register(ctx, { name: 'pre' });
    const it = reg.find(ctx, { network_service_endpoint: {}, watch: true })[Symbol.asyncIterator]();
    const first = await it.next(); // subscribes; the snapshot does not count against the buffer
    expect(first.value?.network_service_endpoint?.name).toBe('pre');

    // Nobody reads; registrations must still complete.
    for (let i = 0; i < 10; i++) await reg.register(ctx, { name: `n${i}` });
    expect((await findAll(reg.find(ctx, { network_service_endpoint: {} }))).length).toBe(11);

    const got: string[] = [];
    let err: unknown;
    try {
      for (;;) {
        const r = await it.next();
        if (r.done) break;
        got.push(r.value.network_service_endpoint?.name ?? '');
      }
    } catch (e) {
      err = e;
    }
    expect(got).toEqual(['n0', 'n1', 'n2']);
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe('UNAVAILABLE');

    // Other watchers still work.
    const w2 = collect(reg.find(ctx, { network_service_endpoint: { name: 'late' }, watch: true }));
    await reg.register(ctx, { name: 'late' });
    await flush();
    expect(w2.items.map((r) => r.network_service_endpoint?.name)).toEqual(['late']);
  });
});
