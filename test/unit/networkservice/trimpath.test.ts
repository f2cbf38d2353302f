import { describe, it, expect } from 'vitest';
import type { Connection } from '../../../src/api';
import { Ctx } from '../../../src/core/ctx';
import { chainServer, chainClient, clientToServer, nextServer, NetworkServiceServer } from '../../../src/core/networkservice';
import { trimPathServer, trimPathClient, markNextHop } from '../../../src/networkservice/trimpath';

const stale: Connection = {
  id: 'm',
  path: {
    index: 1,
    path_segments: [
      { name: 'nsc', id: 'c' },
      { name: 'mgr', id: 'm' },
      { name: 'old-fwd', id: 'f' },
      { name: 'old-nse', id: 'e' },
    ],
  },
};

/** trimPathClient adapted into a server chain, to see it sit before a failing hop. */
function trimClientAsServer(): NetworkServiceServer {
  return clientToServer(chainClient(trimPathClient()));
}

describe('trimpath', () => {
  it('the last server cuts the path after its own segment', async () => {
    const conn = await chainServer(trimPathServer()).request(Ctx.background(), { connection: stale });
    expect(conn.path?.path_segments?.map((s) => s.name)).toEqual(['nsc', 'mgr']);
    expect(conn.path?.index).toBe(1);
    expect(stale.path?.path_segments).toHaveLength(4);
  });

  it('a server whose client reached a next hop keeps the path', async () => {
    const conn = await chainServer(trimPathServer(), clientToServer(chainClient(trimPathClient()))).request(Ctx.background(), {
      connection: stale,
    });
    expect(conn.path?.path_segments).toHaveLength(4);
  });

  it('a failed next hop does not count, and markNextHop works for non-client hops', async () => {
    const marker: NetworkServiceServer = {
      async request(ctx, req) {
        const c = await nextServer(ctx).request(ctx, req);
        markNextHop(ctx);
        return c;
      },
      close: (ctx, c) => nextServer(ctx).close(ctx, c),
    };
    const kept = await chainServer(trimPathServer(), marker).request(Ctx.background(), { connection: stale });
    expect(kept.path?.path_segments).toHaveLength(4);
    // A nested endpoint chain's own trimpath takes the mark of what follows it: the outer
    // server was not told about a next hop, so it trims.
    const nested = await chainServer(trimPathServer(), chainServer(trimPathServer(), marker)).request(Ctx.background(), {
      connection: stale,
    });
    expect(nested.path?.path_segments).toHaveLength(2);
    // A failing next hop marks nothing; the error goes up unchanged.
    const failing: NetworkServiceServer = {
      request: async () => {
        throw new Error('down');
      },
      close: async () => {},
    };
    await expect(chainServer(trimPathServer(), trimClientAsServer(), failing).request(Ctx.background(), { connection: stale })).rejects.toThrow('down');
  });
});
