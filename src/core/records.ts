/**
 * Records: what a chain element or dataplane keeps so that an agent restarted with `kill -9`
 * (or an upgrade) can take its vWires back instead of rebuilding them, so a restart costs no
 * traffic. The agent backs them with its state directory (src/agent/state); elsewhere (unit
 * tests, tools) they are `noRecords()`.
 *
 * Life of a record:
 *   put (made or refreshed; carries its own expiry) → delete (closed)
 * and across a restart:
 *   leftover (loaded from disk) → claim (adopted by the element that made it, e.g. on the
 *   client's next refresh) or, if nobody claims it before its expiry, reaped: the kind's reap
 *   function removes what it describes from the kernel, then the record is deleted.
 */
export interface Records<T> {
  /** Saves (replaces) the record of `key`. Written in the background, in call order per key. */
  put(key: string, value: T): void;
  /** Forgets the record of `key` (a leftover too). */
  delete(key: string): void;
  /**
   * Takes the leftover record of `key`, if the previous run left one that was neither claimed
   * nor reaped yet. Its reaping is cancelled; the record stays stored until put or delete.
   */
  claim(key: string): T | undefined;
  /** Leftovers not claimed yet (copies). */
  leftovers(): [string, T][];
}

/** Records that are never stored: no leftovers, nothing survives the process. */
export function noRecords<T>(): Records<T> {
  return {
    put() {},
    delete() {},
    claim: () => undefined,
    leftovers: () => [],
  };
}

/** The records of `base` whose keys start with `prefix`, seen without it (one endpoint's share of a kind). */
export function scopedRecords<T>(base: Records<T>, prefix: string): Records<T> {
  return {
    put: (key, value) => base.put(prefix + key, value),
    delete: (key) => base.delete(prefix + key),
    claim: (key) => base.claim(prefix + key),
    leftovers: () => base.leftovers().flatMap(([k, v]) => (k.startsWith(prefix) ? [[k.slice(prefix.length), v] as [string, T]] : [])),
  };
}
