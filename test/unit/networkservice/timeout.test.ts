import { describe, it, expect } from 'vitest';
import type { Connection } from '../../../src/api';
import { toTimestamp } from '../../../src/api/time';
import { chainServer } from '../../../src/core/networkservice';
import { updatePathServer } from '../../../src/networkservice/updatepath';
import { beginServer } from '../../../src/networkservice/begin';
import { metadataServer } from '../../../src/networkservice/metadata';
import { timeoutServer } from '../../../src/networkservice/timeout';
import { clientConn, fakeCtx, flush, recorder, failOn } from './helpers';

function endpoint() {
  const rec = recorder();
  const begin = beginServer();
  const chain = chainServer(updatePathServer('nse'), begin, metadataServer(), timeoutServer(), rec);
  return { rec, begin, chain };
}

/** The connection the client sends when it refreshes: its segment expiring at `expires`. */
function refreshed(conn: Connection, expires: number): Connection {
  const c = structuredClone(conn);
  c.path!.path_segments![0]!.expires = toTimestamp(expires);
  return c;
}

describe('timeout server', () => {
  it('closes the connection when the previous segment expires', async () => {
    const { ctx, clock } = fakeCtx();
    const { rec, begin, chain } = endpoint();
    await chain.request(ctx, { connection: clientConn('c1', clock.now() + 60_000) });
    clock.advance(59_999);
    await flush();
    expect(rec.closes).toHaveLength(0);
    clock.advance(1);
    await flush();
    expect(rec.closes).toHaveLength(1);
    expect(rec.closes[0]!.path?.index).toBe(1);
    expect(begin.size).toBe(0);
    expect(clock.pending()).toBe(0);
  });

  it('re-arms on every refresh, and a failed refresh keeps the old timer', async () => {
    const { ctx, clock } = fakeCtx();
    const rec = recorder();
    const chain = chainServer(updatePathServer('nse'), beginServer(), metadataServer(), timeoutServer(), failOn([3]), rec);
    const conn = await chain.request(ctx, { connection: clientConn('c1', clock.now() + 60_000) });
    clock.advance(30_000);
    await chain.request(ctx, { connection: refreshed(conn, clock.now() + 60_000) }); // expires at 90 s
    clock.advance(10_000);
    await expect(chain.request(ctx, { connection: refreshed(conn, clock.now() + 60_000) })).rejects.toBeTruthy();
    clock.advance(40_000); // t = 80 s: the failed refresh did not move the deadline to 100 s... nor close early
    await flush();
    expect(rec.closes).toHaveLength(0);
    clock.advance(10_000); // t = 90 s
    await flush();
    expect(rec.closes).toHaveLength(1);
  });

  it('closes earlier by the time the request had left before its deadline', async () => {
    const { ctx: base, clock } = fakeCtx();
    const { rec, chain } = endpoint();
    const [ctx, cancel] = base.withTimeout(10_000);
    await chain.request(ctx, { connection: clientConn('c1', clock.now() + 60_000) });
    cancel();
    clock.advance(49_999);
    await flush();
    expect(rec.closes).toHaveLength(0);
    clock.advance(1);
    await flush();
    expect(rec.closes).toHaveLength(1);
  });

  it('Close disarms the timer', async () => {
    const { ctx, clock } = fakeCtx();
    const { rec, chain } = endpoint();
    const conn = await chain.request(ctx, { connection: clientConn('c1', clock.now() + 60_000) });
    expect(clock.pending()).toBe(1);
    await chain.close(ctx, conn);
    expect(clock.pending()).toBe(0);
    clock.advance(120_000);
    await flush();
    expect(rec.closes).toHaveLength(1);
  });

  it('refuses a request whose previous segment has no expiry, before going down the chain', async () => {
    const { ctx } = fakeCtx();
    const { rec, begin, chain } = endpoint();
    const conn = clientConn('c1', 0);
    await expect(chain.request(ctx, { connection: conn })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: 'expiration for the previous path segment cannot be nil',
    });
    expect(rec.requests).toHaveLength(0);
    expect(begin.size).toBe(0);
  });

  it('at index 0 (a request the agent made itself) uses its own segment', async () => {
    const { ctx, clock } = fakeCtx();
    const rec = recorder();
    const chain = chainServer(updatePathServer('agent'), beginServer(), metadataServer(), timeoutServer(), rec);
    await expect(chain.request(ctx, { connection: { id: 'own' } })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    const conn: Connection = {
      id: 'own',
      path: { index: 0, path_segments: [{ name: 'agent', id: 'own', expires: toTimestamp(clock.now() + 5_000) }] },
    };
    await chain.request(ctx, { connection: conn });
    clock.advance(5_000);
    await flush();
    expect(rec.closes).toHaveLength(1);
  });

  it('refuses to run without begin, before anything happens downstream', async () => {
    const { ctx, clock } = fakeCtx();
    const rec = recorder();
    const chain = chainServer(updatePathServer('nse'), metadataServer(), timeoutServer(), rec);
    await expect(chain.request(ctx, { connection: clientConn('c1', clock.now() + 60_000) })).rejects.toMatchObject({ code: 'INTERNAL' });
    expect(rec.requests).toHaveLength(0);
  });
});
