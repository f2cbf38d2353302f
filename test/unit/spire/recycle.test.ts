/** recycleConnections: drains on own rotation and on a timer sized by the SVID lifetime. */
import { describe, it, expect } from 'vitest';
import { FakeClock } from '../../../src/core/clock';
import { LocalCa } from '../../../src/spire/ca';
import { recycleConnections } from '../../helpers/spire/server-credentials';
import { StaticSource, contextOf } from '../../helpers/spire/static-source';

describe('recycleConnections', () => {
  it('drains when the SVID rotates and every sixth of its lifetime, until stopped', () => {
    const clock = new FakeClock(Date.now());
    const ca = LocalCa.create({ trustDomain: 'example.org', now: clock.now() });
    const src = new StaticSource(contextOf(ca.issue('spiffe://example.org/a', { ttlMs: 60_000, now: clock.now() }), ca));
    const drains: number[] = [];
    const stop = recycleConnections((g) => drains.push(g), src, { graceMs: 5_000, clock });
    expect(drains).toEqual([]); // the first SVID is not a rotation
    clock.advance(8_900);
    expect(drains).toHaveLength(0);
    clock.advance(1_100);
    expect(drains).toEqual([5_000]); // 60 s / 6 (certificate times are whole seconds)
    clock.advance(10_000);
    expect(drains).toHaveLength(2);
    src.set(contextOf(ca.issue('spiffe://example.org/a', { ttlMs: 60_000, now: clock.now() }), ca));
    expect(drains).toHaveLength(3); // rotation: at once, and the timer starts over
    clock.advance(8_500);
    expect(drains).toHaveLength(3);
    src.set(src.current()!); // same SVID again: nothing
    expect(drains).toHaveLength(3);
    stop();
    clock.advance(60_000);
    expect(drains).toHaveLength(3);
    expect(clock.pending()).toBe(0);
  });

  it('caps the period at maxAgeMs', () => {
    const clock = new FakeClock(Date.now());
    const ca = LocalCa.create({ trustDomain: 'example.org', now: clock.now() });
    const src = new StaticSource(contextOf(ca.issue('spiffe://example.org/a', { ttlMs: 3600_000, now: clock.now() }), ca));
    const drains: number[] = [];
    const stop = recycleConnections((g) => drains.push(g), src, { clock });
    clock.advance(600_000);
    expect(drains).toEqual([10_000]);
    stop();
  });
});
