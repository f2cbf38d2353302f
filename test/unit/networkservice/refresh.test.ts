import { describe, it, expect } from 'vitest';
import type { Connection } from '../../../src/api';
import { toTimestamp } from '../../../src/api/time';
import { chainClient, chainServer, serverToClient } from '../../../src/core/networkservice';
import { updatePathClient } from '../../../src/networkservice/updatepath';
import { beginClient } from '../../../src/networkservice/begin';
import { metadataClient } from '../../../src/networkservice/metadata';
import { refreshClient, refreshAfter } from '../../../src/networkservice/refresh';
import { fakeCtx, flush, recorder, failOn, expireAll } from './helpers';
import { FakeClock } from '../../../src/core/clock';

function nsc(clock: FakeClock, opts: { failures?: number[]; extraSegments?: number } = {}) {
  const rec = recorder((c) => {
    const segs = [...(c.path?.path_segments ?? [])];
    for (let i = 0; i < (opts.extraSegments ?? 0); i++) segs.push({ name: `hop${i}`, id: `h${i}` });
    return expireAll(() => clock.now() + 60_000)({ ...c, path: { ...c.path, path_segments: segs } });
  });
  const chain = chainClient(
    updatePathClient('nsc'),
    beginClient(),
    metadataClient(),
    refreshClient(),
    serverToClient(chainServer(failOn(opts.failures ?? []), rec)),
  );
  return { rec, chain };
}

async function advance(clock: FakeClock, ms: number): Promise<void> {
  clock.advance(ms);
  await flush();
}

describe('refresh client', () => {
  it('refreshes a one-segment path after a third of the expiry, again and again', async () => {
    const { ctx, clock } = fakeCtx();
    const { rec, chain } = nsc(clock);
    await chain.request(ctx, { connection: { id: 'c1' } });
    await advance(clock, 19_999);
    expect(rec.requests).toHaveLength(1);
    await advance(clock, 1);
    expect(rec.requests).toHaveLength(2);
    // The refresh carries the connection the chain last returned.
    expect(rec.requests[1]!.connection!.path!.path_segments![0]!.expires).toBeTruthy();
    await advance(clock, 20_000);
    expect(rec.requests).toHaveLength(3);
  });

  it('refreshes at 0.2 of the expiry from index 0 of a longer path', async () => {
    const { ctx, clock } = fakeCtx();
    const { rec, chain } = nsc(clock, { extraSegments: 2 });
    await chain.request(ctx, { connection: { id: 'c1' } });
    await advance(clock, 11_999);
    expect(rec.requests).toHaveLength(1);
    await advance(clock, 1);
    expect(rec.requests).toHaveLength(2);
  });

  it('retries a failed refresh every 200 ms, then returns to the normal schedule', async () => {
    const { ctx, clock } = fakeCtx();
    const { rec, chain } = nsc(clock, { failures: [2, 3] });
    await chain.request(ctx, { connection: { id: 'c1' } });
    await advance(clock, 20_000); // attempt 2 fails
    await advance(clock, 199);
    expect(rec.requests).toHaveLength(1);
    await advance(clock, 1); // attempt 3 fails
    await advance(clock, 200); // attempt 4 succeeds at t = 20.4 s
    expect(rec.requests).toHaveLength(2);
    await advance(clock, 19_999);
    expect(rec.requests).toHaveLength(2);
    await advance(clock, 1);
    expect(rec.requests).toHaveLength(3);
  });

  it('Close stops refreshing and leaves no timer behind', async () => {
    const { ctx, clock } = fakeCtx();
    const { rec, chain } = nsc(clock);
    const conn = await chain.request(ctx, { connection: { id: 'c1' } });
    await chain.close(ctx, conn);
    expect(clock.pending()).toBe(0);
    await advance(clock, 120_000);
    expect(rec.requests).toHaveLength(1);
    expect(rec.closes).toHaveLength(1);
  });

  it('computes the schedule from the earliest expiry and the hop position', () => {
    const now = 1_000_000;
    const seg = (ms: number | undefined, name = 's') => ({ name, id: name, expires: ms === undefined ? null : toTimestamp(now + ms) });
    const conn = (index: number, ...segs: ReturnType<typeof seg>[]): Connection => ({ path: { index, path_segments: segs } });
    expect(refreshAfter(conn(0, seg(60_000)), now)).toBe(20_000);
    expect(refreshAfter(conn(1, seg(90_000), seg(60_000)), now)).toBe(18_000); // 0.3 of the earliest
    expect(refreshAfter(conn(2, seg(60_000), seg(60_000), seg(60_000)), now)).toBe(20_000); // 0.2 + 0.2·2/3
    expect(refreshAfter(conn(0, seg(-5)), now)).toBe(0);
    expect(refreshAfter(conn(0, seg(60_000), seg(undefined)), now)).toBe(0);
    expect(refreshAfter({}, now)).toBe(0);
  });
});
