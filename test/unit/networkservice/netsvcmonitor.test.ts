import { describe, it, expect, afterEach, afterAll } from 'vitest';
import type { Connection, NetworkService } from '../../../src/api';
import { realClock } from '../../../src/core/clock';
import { Ctx } from '../../../src/core/ctx';
import { chainServer, type NetworkServiceServer } from '../../../src/core/networkservice';
import { beginServer } from '../../../src/networkservice/begin';
import { netsvcmonitorServer } from '../../../src/networkservice/netsvcmonitor';
import { newRegistryServer, type RegistryServer } from '../../../src/registry/server';

const until = async (cond: () => boolean, ms = 2_000) => {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  return cond();
};

const service = (a: string, b: string): NetworkService => ({
  name: 'cnd',
  payload: 'IP',
  matches: [
    { source_selector: { app: 'a' }, routes: [{ destination_selector: { color: a } }] },
    { source_selector: { app: 'b' }, routes: [{ destination_selector: { color: b } }] },
  ],
});

describe('netsvcmonitor', () => {
  let reg: RegistryServer;
  const life = new AbortController();
  afterEach(() => reg?.close());
  afterAll(() => life.abort());

  async function setup() {
    reg = newRegistryServer({ clock: realClock });
    const ctx = reg.ctx();
    await reg.ns.register(ctx, service('blue', 'blue'));
    for (const color of ['blue', 'green']) {
      await reg.nse.register(ctx, { name: `nse-${color}`, network_service_names: ['cnd'], network_service_labels: { cnd: { labels: { color } } }, url: 'unix:///x' });
    }
    const closed: string[] = [];
    // Stands in for discover: the endpoint each client asked for.
    const endpoint: NetworkServiceServer = {
      request: async (_ctx, req) => ({ ...req.connection, network_service_endpoint_name: req.connection?.labels?.['want'] ?? 'nse-blue' }),
      close: async (_ctx, conn) => void closed.push(conn.id ?? ''),
    };
    const chain = chainServer(beginServer(), netsvcmonitorServer({ ns: reg.ns, nse: reg.nse, background: () => Ctx.background({ signal: life.signal }) }), endpoint);
    const connect = (id: string, labels: Record<string, string>) =>
      chain.request(Ctx.background(), { connection: { id, network_service: 'cnd', labels } as Connection });
    return { ctx, chain, connect, closed };
  }

  it('closes only the connections whose endpoint matched and no longer does', async () => {
    const { ctx, connect, closed } = await setup();
    await connect('a', { app: 'a' });
    await connect('b', { app: 'b' });
    await new Promise((r) => setTimeout(r, 50));
    await reg.ns.register(ctx, service('green', 'blue'));
    expect(await until(() => closed.length > 0)).toBe(true);
    await new Promise((r) => setTimeout(r, 50));
    expect(closed).toEqual(['a']);
  });

  it('never closes a connection whose endpoint did not match when it was made (named by its client)', async () => {
    const { ctx, connect, closed } = await setup();
    await connect('pinned', { app: 'a', want: 'nse-green' });
    await new Promise((r) => setTimeout(r, 50));
    await reg.ns.register(ctx, service('blue', 'green'));
    await new Promise((r) => setTimeout(r, 100));
    expect(closed).toEqual([]);
  });

  it('a connection that joins a watch already running is checked against the service as the watch saw it', async () => {
    const { ctx, connect, closed } = await setup();
    await connect('a', { app: 'a' });
    await new Promise((r) => setTimeout(r, 50));
    await connect('b', { app: 'b' });
    await new Promise((r) => setTimeout(r, 50));
    await reg.ns.register(ctx, service('blue', 'green'));
    expect(await until(() => closed.length > 0)).toBe(true);
    expect(closed).toEqual(['b']);
  });

  it('a closed connection is not watched any more', async () => {
    const { ctx, chain, connect, closed } = await setup();
    const a = await connect('a', { app: 'a' });
    await new Promise((r) => setTimeout(r, 50));
    await chain.close(Ctx.background(), a);
    expect(closed).toEqual(['a']);
    await reg.ns.register(ctx, service('green', 'green'));
    await new Promise((r) => setTimeout(r, 100));
    expect(closed).toEqual(['a']);
  });
});
