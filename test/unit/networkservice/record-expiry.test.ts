import { describe, it, expect } from 'vitest';
import { toTimestamp } from '../../../src/api/time';
import { recordExpiry, RECORD_EXPIRY_GRAIN_MS, DEFAULT_RECORD_TTL_MS } from '../../../src/networkservice/utils/proto';

const conn = (expires: number[], index = 1) => ({
  id: 'c',
  path: { index, path_segments: expires.map((e, i) => ({ name: `n${i}`, id: `i${i}`, expires: toTimestamp(e) })) },
});

describe('recordExpiry', () => {
  it('is the previous segment expiry (own at index 0), rounded up to the next whole minute', () => {
    const m = RECORD_EXPIRY_GRAIN_MS;
    expect(recordExpiry(conn([10 * m + 1, 99 * m]), 0)).toBe(11 * m);
    expect(recordExpiry(conn([10 * m, 99 * m]), 0)).toBe(10 * m);
    expect(recordExpiry(conn([10 * m + 5, 99 * m], 0), 0)).toBe(11 * m);
  });

  it('never earlier than the exact expiry, and the same record for the refreshes within one minute', () => {
    const m = RECORD_EXPIRY_GRAIN_MS;
    const seen = new Set<number>();
    for (let t = 0; t < m; t += 6_000) {
      const exact = 5 * m + 30_000 + t;
      const r = recordExpiry(conn([exact, exact + m]), t);
      expect(r).toBeGreaterThanOrEqual(exact);
      expect(r - exact).toBeLessThan(m);
      seen.add(r);
    }
    expect(seen.size).toBe(2);
  });

  it('without an expiry: now + the default TTL, rounded up too', () => {
    expect(recordExpiry({ id: 'x' }, 1)).toBe(Math.ceil((1 + DEFAULT_RECORD_TTL_MS) / RECORD_EXPIRY_GRAIN_MS) * RECORD_EXPIRY_GRAIN_MS);
  });
});
