import { describe, it, expect } from 'vitest';
import { Ctx } from '../../../src/core/ctx';
import {
  chainServer,
  chainClient,
  clientToServer,
  nextServer,
  nextClient,
  NetworkServiceServer,
  NetworkServiceClient,
} from '../../../src/core/networkservice';

function tagServer(tag: string, log: string[]): NetworkServiceServer {
  return {
    async request(ctx, req) {
      log.push(`>${tag}`);
      const conn = await nextServer(ctx).request(ctx, req);
      log.push(`<${tag}`);
      return { ...conn, labels: { ...conn.labels, [tag]: '1' } };
    },
    async close(ctx, conn) {
      log.push(`x${tag}`);
      await nextServer(ctx).close(ctx, conn);
    },
  };
}
function tagClient(tag: string, log: string[]): NetworkServiceClient {
  return {
    async request(ctx, req) {
      log.push(`>${tag}`);
      return nextClient(ctx).request(ctx, req);
    },
    async close(ctx, conn) {
      log.push(`x${tag}`);
      await nextClient(ctx).close(ctx, conn);
    },
  };
}

describe('chain', () => {
  it('runs elements in order, way in and way back, ending in the tail', async () => {
    const log: string[] = [];
    const chain = chainServer(tagServer('a', log), tagServer('b', log));
    const conn = await chain.request(Ctx.background(), { connection: { id: 'c1' } });
    expect(log).toEqual(['>a', '>b', '<b', '<a']);
    expect(conn).toEqual({ id: 'c1', labels: { a: '1', b: '1' } });
  });

  it('continues a nested chain into the outer chain', async () => {
    const log: string[] = [];
    const inner = chainServer(tagServer('i1', log), tagServer('i2', log));
    const outer = chainServer(tagServer('o1', log), inner, tagServer('o2', log));
    await outer.request(Ctx.background(), { connection: { id: 'x' } });
    expect(log).toEqual(['>o1', '>i1', '>i2', '>o2', '<o2', '<i2', '<i1', '<o1']);
    log.length = 0;
    await outer.close(Ctx.background(), { id: 'x' });
    expect(log).toEqual(['xo1', 'xi1', 'xi2', 'xo2']);
  });

  it('an empty chain is the tail', async () => {
    const conn = await chainServer().request(Ctx.background(), { connection: { id: 'e' } });
    expect(conn).toEqual({ id: 'e' });
  });

  it('a client chain adapted into a server chain ends in its own tail, then continues', async () => {
    const log: string[] = [];
    const client = chainClient(tagClient('c1', log), tagClient('c2', log));
    const server = chainServer(tagServer('s1', log), clientToServer(client), tagServer('s2', log));
    await server.request(Ctx.background(), { connection: { id: 'y' } });
    expect(log).toEqual(['>s1', '>c1', '>c2', '>s2', '<s2', '<s1']);
  });

  it('a chain can be reused concurrently without mixing positions', async () => {
    const log: string[] = [];
    const chain = chainServer(tagServer('a', log), tagServer('b', log));
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => chain.request(Ctx.background(), { connection: { id: `c${i}` } })),
    );
    expect(results.map((r) => r.id)).toEqual(Array.from({ length: 10 }, (_, i) => `c${i}`));
    expect(log.filter((l) => l === '<a')).toHaveLength(10);
  });

  it('positions are built once per chain and outer next, not per call', async () => {
    const nexts: unknown[] = [];
    const spy: NetworkServiceServer = {
      async request(ctx, req) {
        nexts.push(nextServer(ctx));
        return nextServer(ctx).request(ctx, req);
      },
      close: (ctx, conn) => nextServer(ctx).close(ctx, conn),
    };
    const inner = chainServer(spy, tagServer('b', []));
    const outer = chainServer(inner, tagServer('c', []));
    for (let i = 0; i < 3; i++) await outer.request(Ctx.background(), { connection: { id: `r${i}` } });
    expect(nexts).toHaveLength(3);
    expect(new Set(nexts).size).toBe(1);
    // Under another outer next, the same chain continues there, not into the first one's.
    const log: string[] = [];
    const other = chainServer(inner, tagServer('d', log));
    const conn = await other.request(Ctx.background(), { connection: { id: 'o' } });
    expect(log).toEqual(['>d', '<d']);
    expect(conn.labels).toEqual({ d: '1', b: '1' });
    expect(nexts[3]).not.toBe(nexts[0]);
  });
});
