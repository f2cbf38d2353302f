import { describe, it, expect } from 'vitest';
import type { Connection } from '../../../src/api';
import { Ctx } from '../../../src/core/ctx';
import { FakeClock } from '../../../src/core/clock';
import { chainServer, chainClient, clientToServer, serverToClient, nextServer, NetworkServiceServer } from '../../../src/core/networkservice';
import { beginServer, beginClient, eventFactory, EventFactory, eventFactoryOf } from '../../../src/networkservice/begin';
import { recorder, clientRecorder, failOn, flush, gate } from './helpers';

/** Captures the event factory of each request. */
function grabFactory(out: EventFactory[]): NetworkServiceServer {
  return {
    async request(ctx, req) {
      out.push(eventFactory(ctx));
      return nextServer(ctx).request(ctx, req);
    },
    close: (ctx, conn) => nextServer(ctx).close(ctx, conn),
  };
}

describe('begin server', () => {
  it('runs two requests for one id in order, one at a time', async () => {
    const log: string[] = [];
    const g = gate(log);
    const chain = chainServer(beginServer(), g);
    const ctx = Ctx.background();
    const first = chain.request(ctx, { connection: { id: 'a', labels: { n: '1' } } });
    const second = chain.request(ctx, { connection: { id: 'a', labels: { n: '2' } } });
    await flush();
    expect(g.waiting()).toEqual(['a#1']);
    g.release('a#1');
    await first;
    await flush();
    expect(g.waiting()).toEqual(['a#2']);
    g.release('a#2');
    expect((await second).labels).toEqual({ n: '2' });
    expect(log).toEqual(['enter a#1', 'exit a#1', 'enter a#2', 'exit a#2']);
  });

  it('runs requests for different ids side by side', async () => {
    const log: string[] = [];
    const g = gate(log);
    const chain = chainServer(beginServer(), g);
    const ctx = Ctx.background();
    const a = chain.request(ctx, { connection: { id: 'a' } });
    const b = chain.request(ctx, { connection: { id: 'b' } });
    await flush();
    expect(g.waiting().sort()).toEqual(['a#1', 'b#2']);
    g.release('b#2');
    g.release('a#1');
    await Promise.all([a, b]);
  });

  it('sets state UP and rejects an empty id', async () => {
    const chain = chainServer(beginServer(), recorder((c) => ({ ...c, state: 'DOWN' })));
    expect((await chain.request(Ctx.background(), { connection: { id: 'a', state: 'REFRESH_REQUESTED' } })).state).toBe('UP');
    await expect(chain.request(Ctx.background(), { connection: {} })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('closes with the stored connection, even with a cancelled ctx, and ignores unknown ids', async () => {
    const rec = recorder((c) => ({ ...c, labels: { set: 'by-chain' } }));
    const begin = beginServer();
    const chain = chainServer(begin, rec);
    await chain.close(Ctx.background(), { id: 'unknown' });
    expect(rec.closes).toHaveLength(0);

    await chain.request(Ctx.background(), { connection: { id: 'a' } });
    const ac = new AbortController();
    ac.abort();
    await chain.close(Ctx.background({ signal: ac.signal }), { id: 'a' });
    expect(rec.closes).toEqual([{ id: 'a', labels: { set: 'by-chain' }, state: 'UP' }]);
    expect(rec.ctxs.at(-1)!.signal.aborted).toBe(false);
    expect(begin.size).toBe(0);
  });

  it('forgets a failed first request, keeps an established connection when a refresh fails', async () => {
    const begin = beginServer();
    const chain = chainServer(begin, failOn([1, 3]));
    await expect(chain.request(Ctx.background(), { connection: { id: 'a' } })).rejects.toBeTruthy();
    expect(begin.size).toBe(0);
    await chain.request(Ctx.background(), { connection: { id: 'a' } });
    await expect(chain.request(Ctx.background(), { connection: { id: 'a' } })).rejects.toBeTruthy();
    expect(begin.size).toBe(1);
  });

  it('the event factory re-requests from the element after begin with the stored request', async () => {
    const factories: EventFactory[] = [];
    let n = 0;
    const rec = recorder((c) => ({ ...c, labels: { ...c.labels, pass: String(++n) } }));
    const before = recorder();
    const chain = chainServer(before, beginServer(), grabFactory(factories), rec);
    await chain.request(Ctx.background(), { connection: { id: 'a', labels: { app: 'x' } }, mechanism_preferences: [{ type: 'KERNEL' }] });
    expect(await factories[0]!.request()).toBeUndefined();
    expect(before.requests).toHaveLength(1); // re-entry skips what comes before begin
    expect(rec.requests[1]).toEqual({
      connection: { id: 'a', labels: { app: 'x', pass: '1' }, state: 'UP' },
      mechanism_preferences: [{ type: 'KERNEL' }],
    });
    // The factory's ctx has its own event factory, deadline and no inherited cancellation.
    expect(eventFactoryOf(rec.ctxs[1]!)).toBe(factories[0]);
    expect(rec.ctxs[1]!.deadline).toBeDefined();
  });

  it('the event factory close goes down the chain once; later events are skipped', async () => {
    const factories: EventFactory[] = [];
    const rec = recorder();
    const begin = beginServer();
    const chain = chainServer(begin, grabFactory(factories), rec);
    await chain.request(Ctx.background(), { connection: { id: 'a' } });
    expect(await factories[0]!.close()).toBeUndefined();
    expect(rec.closes).toHaveLength(1);
    expect(begin.size).toBe(0);
    await factories[0]!.request();
    await factories[0]!.close();
    await chain.close(Ctx.background(), { id: 'a' });
    expect(rec.requests).toHaveLength(1);
    expect(rec.closes).toHaveLength(1);
  });

  it('serialises factory events with external ones', async () => {
    const log: string[] = [];
    const factories: EventFactory[] = [];
    const g = gate(log);
    const chain = chainServer(beginServer(), grabFactory(factories), g);
    const first = chain.request(Ctx.background(), { connection: { id: 'a' } });
    await flush();
    g.release('a#1');
    await first;
    const external = chain.request(Ctx.background(), { connection: { id: 'a' } });
    const refresh = factories[0]!.request();
    await flush();
    expect(g.waiting()).toEqual(['a#2']);
    g.release('a#2');
    await external;
    await flush();
    expect(g.waiting()).toEqual(['a#3']);
    g.release('a#3');
    expect(await refresh).toBeUndefined();
  });

  it('closes the old downstream before a RESELECT_REQUESTED request', async () => {
    const order: string[] = [];
    const rec = recorder((c) => (order.push(`request ${c.network_service_endpoint_name}`), c));
    const spy: NetworkServiceServer = {
      request: (ctx, req) => nextServer(ctx).request(ctx, req),
      close: async (ctx, conn) => {
        order.push(`close ${conn.network_service_endpoint_name}`);
        await nextServer(ctx).close(ctx, conn);
      },
    };
    const chain = chainServer(beginServer(), spy, rec);
    const conn = await chain.request(Ctx.background(), { connection: { id: 'a', network_service_endpoint_name: 'nse-1' } });
    await chain.request(Ctx.background(), {
      connection: { ...conn, network_service_endpoint_name: 'nse-2', state: 'RESELECT_REQUESTED' },
    });
    expect(order).toEqual(['request nse-1', 'close nse-1', 'request nse-2']);
  });

  it('a caller that gives up while queued gets its abort error and its request never runs', async () => {
    const log: string[] = [];
    const g = gate(log);
    const chain = chainServer(beginServer(), g);
    const first = chain.request(Ctx.background(), { connection: { id: 'a' } });
    const clock = new FakeClock();
    const [ctx, cancel] = Ctx.background({ clock }).withTimeout(1000);
    const second = chain.request(ctx, { connection: { id: 'a' } });
    clock.advance(1000);
    await expect(second).rejects.toMatchObject({ code: 'DEADLINE_EXCEEDED' });
    cancel();
    await flush();
    g.release('a#1');
    await first;
    await flush();
    expect(g.waiting()).toEqual([]);
    expect(log).toEqual(['enter a#1', 'exit a#1']);
  });

  it('a server chain called in-process below a client begin keeps its own state', async () => {
    const server = beginServer();
    const client = beginClient();
    const chain = chainClient(client, serverToClient(chainServer(server)));
    await chain.request(Ctx.background(), { connection: { id: 'a' } });
    expect(client.size).toBe(1);
    expect(server.size).toBe(1);
    // ...but a client begin inside a server chain passes through.
    const outer = beginServer();
    const inner = beginClient();
    await chainServer(outer, clientToServer(chainClient(inner))).request(Ctx.background(), { connection: { id: 'b' } });
    expect(outer.size).toBe(1);
    expect(inner.size).toBe(0);
  });
});

describe('begin client', () => {
  it('merges the caller changes with the connection the chain holds', async () => {
    const factories: EventFactory[] = [];
    let pass = 0;
    const rec = clientRecorder((c) => ({
      ...c,
      labels: { pass: String(++pass) },
      context: { ...c.context, extra_context: { ...(c.context?.extra_context ?? {}), server: String(pass) } },
    }));
    const grab = {
      request: async (ctx: Ctx, req: Parameters<NetworkServiceServer['request']>[1]) => {
        factories.push(eventFactory(ctx));
        return rec.request(ctx, req);
      },
      close: (ctx: Ctx, conn: Connection) => rec.close(ctx, conn),
    };
    const chain = chainClient(beginClient(), grab);
    const returned = await chain.request(Ctx.background(), {
      connection: { id: 'a', context: { extra_context: { mine: '1' } } },
    });
    expect(returned.context?.extra_context).toEqual({ mine: '1', server: '1' });
    // A refresh inside the chain changes the current connection without the caller seeing it.
    await factories[0]!.request();
    expect(rec.requests[1]!.connection!.context?.extra_context).toEqual({ mine: '1', server: '1' });

    // The caller changes one key and removes another; the chain's newer values are kept.
    await chain.request(Ctx.background(), {
      connection: { ...returned, network_service_endpoint_name: 'chosen', context: { extra_context: { mine: '2' } } },
    });
    const sent = rec.requests[2]!.connection!;
    expect(sent.context?.extra_context).toEqual({ mine: '2' });
    expect(sent.network_service_endpoint_name).toBe('chosen');
    expect(sent.labels).toEqual({ pass: '2' });
  });

  it('a reselect from the factory closes, then requests without mechanism and endpoint', async () => {
    const factories: EventFactory[] = [];
    const rec = clientRecorder((c) => ({ ...c, mechanism: { type: 'KERNEL' }, network_service_endpoint_name: 'nse-1' }));
    const chain = chainClient(
      beginClient(),
      {
        request: async (ctx, req) => {
          factories.push(eventFactory(ctx));
          return rec.request(ctx, req);
        },
        close: (ctx, conn) => rec.close(ctx, conn),
      },
    );
    await chain.request(Ctx.background(), { connection: { id: 'a' } });
    expect(await factories[0]!.request({ reselect: true })).toBeUndefined();
    expect(rec.closes).toEqual([{ id: 'a', mechanism: { type: 'KERNEL' }, network_service_endpoint_name: 'nse-1' }]);
    expect(rec.requests[1]!.connection).toMatchObject({
      id: 'a',
      mechanism: null,
      network_service_endpoint_name: '',
      state: 'RESELECT_REQUESTED',
    });
  });

  it('a failed reselect keeps the request so it can be retried without closing again', async () => {
    const factories: EventFactory[] = [];
    const fail = failOn([2]);
    const rec = recorder();
    const chain = chainClient(
      beginClient(),
      serverToClient(chainServer(
        {
          request: async (ctx, req) => {
            factories.push(eventFactory(ctx));
            return nextServer(ctx).request(ctx, req);
          },
          close: (ctx, conn) => nextServer(ctx).close(ctx, conn),
        },
        fail,
        rec,
      )),
    );
    await chain.request(Ctx.background(), { connection: { id: 'a', network_service_endpoint_name: 'x' } });
    const f = factories[0]!;
    expect(await f.request({ reselect: true })).toMatchObject({ code: 'UNAVAILABLE' });
    expect(await f.request({ reselect: true })).toBeUndefined();
    expect(rec.closes).toHaveLength(1);
    expect(rec.requests.at(-1)!.connection).toMatchObject({ state: 'RESELECT_REQUESTED', network_service_endpoint_name: '' });
  });

  it('an external re-request after a failed reselect keeps reselecting', async () => {
    const factories: EventFactory[] = [];
    const rec = recorder((c) => ({ ...c, network_service_endpoint_name: c.network_service_endpoint_name || 'picked' }));
    const chain = chainClient(
      beginClient(),
      serverToClient(chainServer(
        {
          request: async (ctx, req) => {
            factories.push(eventFactory(ctx));
            return nextServer(ctx).request(ctx, req);
          },
          close: (ctx, conn) => nextServer(ctx).close(ctx, conn),
        },
        failOn([2]),
        rec,
      )),
    );
    const conn = await chain.request(Ctx.background(), { connection: { id: 'a', network_service_endpoint_name: 'old' } });
    expect(await factories[0]!.request({ reselect: true })).toBeTruthy();
    const again = await chain.request(Ctx.background(), { connection: conn });
    expect(rec.requests.at(-1)!.connection).toMatchObject({ state: 'RESELECT_REQUESTED', network_service_endpoint_name: '' });
    expect(again.network_service_endpoint_name).toBe('picked');
    expect(rec.closes).toHaveLength(1);
  });
});
