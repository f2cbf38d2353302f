import { describe, it, expect } from 'vitest';
import { Ctx, Key } from '../../../src/core/ctx';
import { chainServer, chainClient, clientToServer, serverToClient, nextServer, NetworkServiceServer } from '../../../src/core/networkservice';
import { metadataServer, metadataClient, metadata, MetaMap } from '../../../src/networkservice/metadata';
import { failOn } from './helpers';

const COUNT = new Key<number>('count');

/** Counts requests per connection in metadata and reports what it saw. */
function counter(seen: (number | undefined)[], side: 'server' | 'client' = 'server'): NetworkServiceServer {
  return {
    async request(ctx, req) {
      const m = metadata(ctx, side);
      m.set(COUNT, (m.get(COUNT) ?? 0) + 1);
      seen.push(m.get(COUNT));
      return nextServer(ctx).request(ctx, req);
    },
    async close(ctx, conn) {
      seen.push(-(metadata(ctx, side).get(COUNT) ?? 0));
      return nextServer(ctx).close(ctx, conn);
    },
  };
}

describe('metadata', () => {
  it('keeps state per connection id until Close, visible during Close', async () => {
    const seen: (number | undefined)[] = [];
    const md = metadataServer();
    const chain = chainServer(md, counter(seen));
    const ctx = Ctx.background();
    await chain.request(ctx, { connection: { id: 'a' } });
    await chain.request(ctx, { connection: { id: 'a' } });
    await chain.request(ctx, { connection: { id: 'b' } });
    expect(seen).toEqual([1, 2, 1]);
    expect(md.size).toBe(2);
    await chain.close(ctx, { id: 'a' });
    expect(seen.at(-1)).toBe(-2);
    expect(md.size).toBe(1);
    await chain.request(ctx, { connection: { id: 'a' } });
    expect(seen.at(-1)).toBe(1);
  });

  it('drops the state of a failed first request but keeps it when a refresh fails', async () => {
    const seen: (number | undefined)[] = [];
    const md = metadataServer();
    const chain = chainServer(md, counter(seen), failOn([1, 3]));
    const ctx = Ctx.background();
    await expect(chain.request(ctx, { connection: { id: 'a' } })).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(md.size).toBe(0);
    await chain.request(ctx, { connection: { id: 'a' } }); // first success: count starts again at 1
    await expect(chain.request(ctx, { connection: { id: 'a' } })).rejects.toBeTruthy();
    expect(md.size).toBe(1);
    await chain.request(ctx, { connection: { id: 'a' } });
    expect(seen).toEqual([1, 1, 2, 3]);
  });

  it('keeps server and client state apart', () => {
    const md = new MetaMap();
    md.set(COUNT, 3);
    expect(md.take(COUNT)).toBe(3);
    expect(md.has(COUNT)).toBe(false);
  });

  it('throws without a metadata element', async () => {
    await expect(chainServer(counter([])).request(Ctx.background(), { connection: { id: 'a' } })).rejects.toMatchObject({
      code: 'INTERNAL',
    });
  });

  it('a client chain inside a server chain shares the server metadata; a server chain below a client chain has its own', async () => {
    const serverMd = metadataServer();
    const clientMd = metadataClient();
    const seen: (number | undefined)[] = [];
    const chain = chainServer(
      serverMd,
      counter(seen),
      clientToServer(chainClient(clientMd, serverToClient(counter(seen, 'client')))),
    );
    await chain.request(Ctx.background(), { connection: { id: 'a' } });
    expect(clientMd.size).toBe(0);
    expect(serverMd.size).toBe(1);

    const innerMd = metadataServer();
    const outerMd = metadataClient();
    const client = chainClient(outerMd, serverToClient(chainServer(innerMd, counter([]))));
    await client.request(Ctx.background(), { connection: { id: 'b' } });
    expect(outerMd.size).toBe(1);
    expect(innerMd.size).toBe(1);
  });
});
