/** The connection journal: first-seen times, next hop URLs and last heals, each going with its connection. */
import { describe, it, expect } from 'vitest';
import { ConnectionJournal } from '../../../src/agent/journal';
import { FakeClock } from '../../../src/core/clock';
import { Ctx } from '../../../src/core/ctx';
import { chainClient } from '../../../src/core/networkservice';
import { withClientURL } from '../../../src/networkservice/clienturl';

describe('ConnectionJournal', () => {
  it('keeps the first time a connection was seen, until its DELETE', () => {
    const clock = new FakeClock(1_000);
    const j = new ConnectionJournal(clock);
    j.follow({ type: 'UPDATE', connections: { a: { id: 'a' } } });
    clock.advance(500);
    j.follow({ type: 'UPDATE', connections: { a: { id: 'a' }, b: { id: 'b' } } });
    expect([j.since('a'), j.since('b')]).toEqual([1_000, 1_500]);
    j.follow({ type: 'DELETE', connections: { a: { id: 'a' } } });
    expect(j.since('a')).toBeUndefined();
  });

  it('counts heals: one per heal however often it reports; forgets them on the Close', () => {
    const j = new ConnectionJournal(new FakeClock());
    j.healed('h', { trigger: 'connection down', started: 10, attempts: 0, reselected: false });
    j.healed('h', { trigger: 'connection down', started: 10, attempts: 1, reselected: false, recovered: 20 });
    expect(j.lastHeal('h')).toEqual({ trigger: 'connection down', started: 10, attempts: 1, reselected: false, recovered: 20, count: 1 });
    j.healed('h', { trigger: 'data plane check failed', started: 30, attempts: 0, reselected: true });
    expect(j.lastHeal('h')).toMatchObject({ trigger: 'data plane check failed', count: 2 });
    j.healed('h', undefined);
    expect(j.lastHeal('h')).toBeUndefined();
  });

  it('records the URL a connection\'s next hop was dialled at, until its Close', async () => {
    const j = new ConnectionJournal(new FakeClock());
    const chain = chainClient(j.nextHopRecorder());
    const ctx = withClientURL(Ctx.background(), 'tcp://10.0.0.2:5001');
    await chain.request(ctx, { connection: { id: 'a' } });
    expect(j.nextHop('a')).toBe('tcp://10.0.0.2:5001');
    await chain.close(ctx, { id: 'a' });
    expect(j.nextHop('a')).toBeUndefined();
  });
});
