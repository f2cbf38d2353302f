/**
 * A map that keeps at most `max` entries: adding one more forgets the oldest added. For caches of
 * results that depend only on their key (a parsed certificate, a signed or verified token), where
 * forgetting only costs doing the work again.
 */
export class RecentMap<K, V> {
  private readonly entries = new Map<K, V>();

  constructor(private readonly max: number) {}

  get(key: K): V | undefined {
    return this.entries.get(key);
  }

  set(key: K, value: V): void {
    if (!this.entries.has(key) && this.entries.size >= this.max) {
      this.entries.delete(this.entries.keys().next().value as K);
    }
    this.entries.set(key, value);
  }

  clear(): void {
    this.entries.clear();
  }
}
