import { describe, it, expect } from 'vitest';
import { Ctx } from '../../../src/core/ctx';
import { newRegistryServer } from '../../../src/registry/server';
import { realClock } from '../../../src/core/clock';

describe('registry validate', () => {
  const reg = () => newRegistryServer({ clock: realClock });
  const refused = async (p: Promise<unknown>) => {
    const e = await p.then(() => undefined, (err: unknown) => err);
    expect(e).toMatchObject({ code: 'INVALID_ARGUMENT' });
    return (e as Error).message;
  };

  it('refuses endpoint registrations with a URL, name or label the agent cannot act on', async () => {
    const r = reg();
    const ctx = Ctx.background();
    try {
      expect(await refused(r.nse.register(ctx, { name: 'e', url: 'not a url', network_service_names: ['s'] }))).toMatch(/url "not a url" is not a URL/);
      expect(await refused(r.nse.register(ctx, { name: 'e', url: 'http://h:1', network_service_names: ['s'] }))).toMatch(/must be tcp:\/\/HOST:PORT or unix:\/\/\/PATH/);
      expect(await refused(r.nse.register(ctx, { name: 'e', url: 'tcp://h', network_service_names: ['s'] }))).toMatch(/tcp:\/\/HOST:PORT/);
      await refused(r.nse.register(ctx, { name: '', url: 'tcp://h:1' }));
      await refused(r.nse.register(ctx, { name: 'a b', url: 'tcp://h:1' }));
      await refused(r.nse.register(ctx, { name: 'e', url: 'tcp://h:1', network_service_names: ['s'], network_service_labels: { s: { labels: { 'bad key': 'x' } } } }));
      const ok = await r.nse.register(ctx, { name: 'e', url: 'unix:///run/x.sock', network_service_names: ['s'], network_service_labels: { s: { labels: { app: 'x' } } } });
      expect(ok.name).toBe('e');
      await refused(r.ns.register(ctx, { name: 'bad name' }));
      await refused(r.ns.register(ctx, { name: 's', matches: [{ source_selector: { '': 'x' } }] }));
      expect((await r.ns.register(ctx, { name: 's' })).payload).toBe('IP');
    } finally {
      r.close();
    }
  });
});
