import { describe, expect, it } from 'vitest';
import { RecentMap } from '../../../src/core/recent';

describe('RecentMap', () => {
  it('keeps at most max entries, forgetting the oldest added; setting a kept key again evicts nothing', () => {
    const m = new RecentMap<string, number>(2);
    m.set('a', 1);
    m.set('b', 2);
    m.set('a', 3); // replaced in place
    expect([m.get('a'), m.get('b')]).toEqual([3, 2]);
    m.set('c', 4);
    expect([m.get('a'), m.get('b'), m.get('c')]).toEqual([undefined, 2, 4]);
    m.clear();
    expect(m.get('b')).toBeUndefined();
  });
});
