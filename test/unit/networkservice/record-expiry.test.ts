import { describe, it, expect } from 'vitest';
import { toTimestamp } from '../../../src/api/time';
import { recordExpiry, recordExpiryGrain, DEFAULT_RECORD_TTL_MS } from '../../../src/networkservice/utils/proto';

const conn = (expires: number[], index = 1) => ({
  id: 'c',
  path: { index, path_segments: expires.map((e, i) => ({ name: `n${i}`, id: `i${i}`, expires: toTimestamp(e) })) },
});

describe('recordExpiry', () => {
  it('grain: about half the time left, from 1 s to a minute', () => {
    expect(recordExpiryGrain(30_000)).toBe(15_000);
    expect(recordExpiryGrain(29_990)).toBe(15_000);
    expect(recordExpiryGrain(6_000)).toBe(2_000);
    expect(recordExpiryGrain(600_000)).toBe(60_000);
    expect(recordExpiryGrain(1_000)).toBe(1_000);
    expect(recordExpiryGrain(-5)).toBe(1_000);
  });

  it('is the previous segment expiry (own at index 0), rounded up to the grain', () => {
    const now = 1_000_000;
    expect(recordExpiry(conn([now + 30_000, now + 99_000]), now)).toBe(1_035_000);
    expect(recordExpiry(conn([now + 30_000 - 5_000, now + 99_000]), now)).toBe(1_030_000);
    expect(recordExpiry(conn([now + 6_001, now + 99_000], 0), now)).toBe(1_008_000);
  });

  it('never earlier than the exact expiry, at most a grain later, and unchanged over most refreshes', () => {
    let writes = 0;
    let last = 0;
    for (let t = 0; t < 300_000; t += 6_000) {
      const exact = t + 30_000 - 7;
      const r = recordExpiry(conn([exact, exact + 5_000]), t);
      expect(r).toBeGreaterThanOrEqual(exact);
      expect(r - exact).toBeLessThan(15_000);
      if (r !== last) writes++;
      last = r;
    }
    // 50 refreshes of 30 s tokens every 6 s (the first included): 21 records written, not 50.
    expect(writes).toBe(21);
  });

  it('without an expiry: now + the default TTL, rounded up to a minute', () => {
    expect(recordExpiry({ id: 'x' }, 1)).toBe(Math.ceil((1 + DEFAULT_RECORD_TTL_MS) / 60_000) * 60_000);
  });
});
