/**
 * EtcdStore against a real etcd (the `etcd` binary; skipped without it): the RecordStore
 * contract (same as the memory store), plus what only etcd does: lease expiry, several
 * clients on one etcd, key prefixes and errors when etcd is unreachable; and the mirror reads
 * are answered from: its own writes at once, other stores' after its watch delivers them,
 * never once etcd is gone (UNAVAILABLE), rebuilt when etcd is back (also a new etcd whose
 * revisions start again).
 */
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { randomBytes } from 'node:crypto';
import type { NetworkServiceEndpoint } from '../../../src/api';
import { toTimestamp } from '../../../src/api/time';
import { AgentError } from '../../../src/core/errors';
import { EtcdStore, EtcdStoreOptions } from '../../../src/registry/store/etcd';
import type { StoreEvent } from '../../../src/registry/store/store';
import { type RunningEtcd, haveEtcd, startEtcd } from '../../harness/etcd.mjs';
import { activeHandles, tcpProxy, TcpProxy, waitFor } from './util';

// Known flake on a loaded 2-core host: a second client's watch can get no events within 5 s
// (etcd3 watch stream set-up under load; not reproduced alone). Retried until that is understood.
describe.skipIf(!haveEtcd())('EtcdStore', { retry: 2 }, () => {
  let etcd: RunningEtcd;
  let handlesBefore: Map<string, number>;
  const cleanups: (() => void | Promise<void>)[] = [];

  beforeAll(async () => {
    handlesBefore = activeHandles();
    etcd = await startEtcd();
  });
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()?.();
  });
  afterAll(async () => {
    await etcd?.stop();
    // Every client closed, etcd gone: no sockets, child processes or timers left over.
    await waitFor('handles released', () => sameHandles(handlesBefore, activeHandles()) || undefined, 5000);
  });

  /** A store on its own prefix (so tests do not see each other's keys), closed after the test. */
  function store(opts: Partial<EtcdStoreOptions> & { prefix?: string } = {}): EtcdStore {
    const s = new EtcdStore({ endpoints: [etcd.endpoint], prefix: `/t-${randomBytes(4).toString('hex')}/`, ...opts });
    cleanups.push(() => s.close());
    return s;
  }

  function watchInto<T>(s: AsyncIterable<StoreEvent<T>>) {
    const events: StoreEvent<T>[] = [];
    let error: unknown;
    const done = (async () => {
      try {
        for await (const ev of s) events.push(ev);
      } catch (e) {
        error = e;
      }
    })();
    return { events, done, error: () => error };
  }

  function liveSignal(): AbortController {
    const ac = new AbortController();
    cleanups.push(() => ac.abort());
    return ac;
  }

  const names = (evs: StoreEvent<{ name?: string }>[]) => evs.map((e) => `${e.type}:${e.record.name}`);

  /** A TCP proxy to `target`, closed after the test. */
  async function proxy(target: string): Promise<TcpProxy> {
    const p = await tcpProxy(target);
    cleanups.push(() => p.close());
    return p;
  }

  /** An etcd of the test's own (to stop or replace), stopped after the test. */
  async function ownEtcd(): Promise<RunningEtcd> {
    const e = await startEtcd();
    cleanups.push(() => e.stop());
    return e;
  }

  /** Whether `s`'s NSE mirror may answer reads now (private state, read for the test). */
  const mirrorValid = (s: EtcdStore): boolean =>
    (s.nse as unknown as { mirror: { valid: boolean } }).mirror.valid;
  const mirrored = (s: EtcdStore) => waitFor('NSE mirror valid', () => mirrorValid(s) || undefined, 15_000);

  /** Counts the etcd range reads `s` makes from now on: reads answered by its mirror make none. */
  function countRanges(s: EtcdStore): () => number {
    const kv = (s as unknown as { client: { kv: { range: (...a: unknown[]) => Promise<unknown> } } }).client.kv;
    const range = kv.range.bind(kv);
    let n = 0;
    kv.range = (...a: unknown[]) => {
      n++;
      return range(...a);
    };
    return () => n;
  }

  /** The error `p` rejects with (fails the test if it resolves). */
  async function rejection(p: Promise<unknown>): Promise<AgentError> {
    const r = await p.then(
      (v) => ({ ok: true as const, v }),
      (e: unknown) => ({ ok: false as const, e }),
    );
    if (r.ok) throw new Error(`expected a rejection, got ${JSON.stringify(r.v)}`);
    return r.e as AgentError;
  }

  it('puts, gets, lists and deletes NSEs and NSs', async () => {
    const s = store();
    expect(await s.nse.get('a')).toBeUndefined();
    expect(await s.nse.list()).toEqual([]);
    const a: NetworkServiceEndpoint = {
      name: 'a',
      network_service_names: ['svc'],
      network_service_labels: { svc: { labels: { app: 'x' } } },
      url: 'tcp://10.0.0.1:5001',
    };
    await s.nse.put(a);
    await s.nse.put({ name: 'b', url: 'tcp://10.0.0.2:5001' });
    await s.ns.put({ name: 'svc', payload: 'IP' });
    expect(await s.nse.get('a')).toEqual(a);
    expect((await s.nse.list()).map((r) => r.name).sort()).toEqual(['a', 'b']);
    expect(await s.ns.list()).toEqual([{ name: 'svc', payload: 'IP' }]);
    expect(await s.ns.get('a')).toBeUndefined(); // NS and NSE names are separate

    await s.nse.put({ ...a, url: 'tcp://10.0.0.9:5001' }); // upsert
    expect((await s.nse.get('a'))?.url).toBe('tcp://10.0.0.9:5001');
    expect(await s.nse.list()).toHaveLength(2);

    expect((await s.nse.delete('a'))?.url).toBe('tcp://10.0.0.9:5001');
    expect(await s.nse.delete('a')).toBeUndefined();
    expect(await s.nse.get('a')).toBeUndefined();
    expect((await s.ns.delete('svc'))?.payload).toBe('IP');
    expect(await s.ns.list()).toEqual([]);
  });

  it('hands out copies', async () => {
    const s = store();
    const rec: NetworkServiceEndpoint = { name: 'a', network_service_names: ['svc'] };
    await s.nse.put(rec);
    rec.network_service_names?.push('mutated');
    const got = await s.nse.get('a');
    expect(got?.network_service_names).toEqual(['svc']);
    got?.network_service_names?.push('again');
    (await s.nse.list())[0]?.network_service_names?.push('again');
    expect((await s.nse.get('a'))?.network_service_names).toEqual(['svc']);

    const ac = liveSignal();
    const w1 = watchInto(s.nse.watch(ac.signal));
    const w2 = watchInto(s.nse.watch(ac.signal));
    await waitFor('snapshots', () => (w1.events.length && w2.events.length) || undefined, 5000);
    w1.events[0]?.record.network_service_names?.push('w1');
    await s.nse.put({ name: 'b', network_service_names: ['x'] });
    await waitFor('puts', () => (w1.events.length === 2 && w2.events.length === 2) || undefined, 5000);
    w1.events[1]?.record.network_service_names?.push('w1');
    expect(w2.events.map((e) => e.record.network_service_names)).toEqual([['svc'], ['x']]);
    await s.nse.delete('a');
    await waitFor('deletes', () => (w1.events.length === 3 && w2.events.length === 3) || undefined, 5000);
    // The delete carries the record as stored, not as a watcher mutated its copy.
    expect(w1.events[2]?.record.network_service_names).toEqual(['svc']);
    ac.abort();
    await Promise.all([w1.done, w2.done]);
  });

  it('watch yields the current records, then every change, until aborted', async () => {
    const s = store();
    await s.nse.put({ name: 'a', url: 'u1' });
    await s.nse.put({ name: 'b', url: 'u2' });
    const ac = liveSignal();
    const w = watchInto(s.nse.watch(ac.signal));
    await waitFor('snapshot', () => w.events.length === 2 || undefined, 5000);
    expect(names(w.events).sort()).toEqual(['put:a', 'put:b']);

    await s.nse.put({ name: 'a', url: 'u1' }); // a refresh is an update too
    await s.nse.put({ name: 'c', url: 'u3' });
    await s.nse.delete('b');
    await s.nse.delete('nope'); // no event
    await s.ns.put({ name: 'svc' }); // other record kind: no event
    await waitFor('changes', () => w.events.length === 5 || undefined, 5000);
    expect(names(w.events.slice(2))).toEqual(['put:a', 'put:c', 'delete:b']);
    expect(w.events[4]?.record).toEqual({ name: 'b', url: 'u2' });

    ac.abort();
    await w.done;
    expect(w.error()).toBeUndefined();
    await new Promise((r) => setTimeout(r, 100));
    expect(w.events).toHaveLength(5);
  });

  it('a watch from a second client on the same etcd sees the first one\'s changes', async () => {
    const prefix = `/shared-${randomBytes(4).toString('hex')}/`;
    const s1 = store({ prefix });
    const s2 = store({ prefix });
    await s1.nse.put({ name: 'a' });
    const ac = liveSignal();
    const w = watchInto(s2.nse.watch(ac.signal));
    await s1.nse.put({ name: 'b' });
    await s1.nse.delete('a');
    await waitFor('events', () => w.events.length === 3 || undefined, 5000);
    expect(names(w.events)).toEqual(['put:a', 'put:b', 'delete:a']);
    expect(await s2.nse.get('b')).toEqual({ name: 'b' });
    // Different prefixes are different registries.
    const other = store();
    expect(await other.nse.list()).toEqual([]);
  });

  it('watchers share one etcd watch: late joiners get the current records, filters apply, it outlives its watchers', async () => {
    const s = store();
    await s.nse.put({ name: 'a', url: 'x' });
    const first = liveSignal();
    const w1 = watchInto(s.nse.watch(first.signal));
    await waitFor('first snapshot', () => w1.events.length === 1 || undefined, 5000);
    await s.nse.put({ name: 'b', url: 'y' });
    await s.nse.delete('a');
    await waitFor('first changes', () => w1.events.length === 3 || undefined, 5000);
    // Joiners while the shared watch runs: the snapshot is the state now, filtered.
    const many = Array.from({ length: 20 }, (_, i) => {
      const ac = liveSignal();
      return { ac, w: watchInto(s.nse.watch(ac.signal, (r) => (i % 2 ? r.url === 'y' : r.url === 'z'))) };
    });
    await waitFor('odd snapshots', () => many.every(({ w }, i) => (i % 2 ? w.events.length === 1 : true)) || undefined, 5000);
    await s.nse.put({ name: 'c', url: 'z' });
    await waitFor('even watchers get c', () => many.every(({ w }, i) => (i % 2 ? true : w.events.length === 1)) || undefined, 5000);
    many.forEach(({ w }, i) => expect(names(w.events)).toEqual([i % 2 ? 'put:b' : 'put:c']));
    for (const { ac } of many) ac.abort();
    first.abort();
    await Promise.all([w1.done, ...many.map(({ w }) => w.done)]);
    expect(names(w1.events)).toEqual(['put:a', 'put:b', 'delete:a', 'put:c']);
    // Nobody watches any more: the mirror and its etcd watch go on (reads use them); a new watcher joins them.
    await s.nse.put({ name: 'd' });
    const again = liveSignal();
    const w2 = watchInto(s.nse.watch(again.signal));
    await waitFor('fresh snapshot', () => w2.events.length === 3 || undefined, 5000);
    expect(names(w2.events).sort()).toEqual(['put:b', 'put:c', 'put:d']);
    await s.nse.delete('b');
    await waitFor('change after the others left', () => w2.events.length === 4 || undefined, 5000);
    expect(names(w2.events.slice(3))).toEqual(['delete:b']);
  });

  it('an aborted signal ends the watch at once', async () => {
    const s = store();
    await s.nse.put({ name: 'a' });
    const ac = new AbortController();
    ac.abort();
    const got: unknown[] = [];
    for await (const ev of s.nse.watch(ac.signal)) got.push(ev);
    expect(got).toEqual([]);
  });

  it('an entry with an expiration_time disappears from etcd when its lease runs out', async () => {
    const prefix = `/exp-${randomBytes(4).toString('hex')}/`;
    const writer = store({ prefix });
    const reader = store({ prefix });
    const ac = liveSignal();
    const w = watchInto(reader.nse.watch(ac.signal));
    const rec: NetworkServiceEndpoint = { name: 'short', url: 'u', expiration_time: toTimestamp(Date.now() + 500) };
    const t0 = Date.now();
    await writer.nse.put(rec);
    await writer.nse.put({ name: 'forever', url: 'v' });
    // The writer goes away (its agent died): nobody deletes the entry but its lease.
    writer.close();
    await waitFor('lease expiry', () => w.events.length === 3 || undefined, 6000);
    const took = Date.now() - t0;
    expect(names(w.events)).toEqual(['put:short', 'put:forever', 'delete:short']);
    expect(w.events[2]?.record).toEqual(rec); // the last known record
    expect(took).toBeGreaterThanOrEqual(1000); // TTL = ceil(0.5 s) + 1 s = 2 s, give or take etcd's checks
    expect(await reader.nse.get('short')).toBeUndefined();
    expect(await reader.nse.get('forever')).toBeDefined();
  });

  it('a refresh moves the entry to a new lease; a put without expiration_time drops the lease', async () => {
    const s = store();
    await s.nse.put({ name: 'a', expiration_time: toTimestamp(Date.now() + 200) }); // TTL 2 s
    await s.nse.put({ name: 'a', expiration_time: toTimestamp(Date.now() + 30_000) }); // refresh
    await s.nse.put({ name: 'b', expiration_time: toTimestamp(Date.now() + 200) }); // TTL 2 s
    await s.nse.put({ name: 'b' }); // no expiry any more
    // An expiration_time already past still gets a lease (the shortest, 2 s) rather than an error.
    await s.nse.put({ name: 'c', expiration_time: toTimestamp(Date.now() - 10_000) });
    expect(await s.nse.get('c')).toBeDefined();
    await new Promise((r) => setTimeout(r, 2500));
    await waitFor('past entry expired', async () => ((await s.nse.get('c')) === undefined) || undefined, 3000);
    expect(await s.nse.get('a')).toBeDefined();
    expect(await s.nse.get('b')).toEqual({ name: 'b' });
  });

  it('a watcher that falls behind its buffer ends with UNAVAILABLE after what was queued', async () => {
    const s = store({ watchBuffer: 2 });
    await s.nse.put({ name: 'seed' });
    const ac = liveSignal();
    const it = s.nse.watch(ac.signal)[Symbol.asyncIterator]();
    expect((await it.next()).value?.record.name).toBe('seed'); // the etcd watch is open now
    for (const n of ['a', 'b', 'c', 'd']) await s.nse.put({ name: n });
    await new Promise((r) => setTimeout(r, 300));
    expect((await it.next()).value?.record.name).toBe('a');
    expect((await it.next()).value?.record.name).toBe('b');
    const err = await it.next().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe('UNAVAILABLE');
  });

  it('reads come from the mirror and see this store\'s own puts and deletes at once', async () => {
    const s = store();
    await mirrored(s);
    const ranges = countRanges(s);
    const byName = (n: string) => (r: NetworkServiceEndpoint) => r.name === n;
    for (let i = 0; i < 100; i++) {
      const rec: NetworkServiceEndpoint = { name: `n${i}`, url: `u${i}`, network_service_names: [`svc${i % 3}`] };
      await s.nse.put(rec);
      expect(await s.nse.get(rec.name!)).toEqual(rec);
      expect(await s.nse.list(byName(rec.name!))).toEqual([rec]);
      await s.nse.put({ ...rec, url: `v${i}` }); // an update, read at once too
      expect((await s.nse.get(rec.name!))?.url).toBe(`v${i}`);
      if (i % 2) {
        expect((await s.nse.delete(rec.name!))?.url).toBe(`v${i}`);
        expect(await s.nse.get(rec.name!)).toBeUndefined();
        expect(await s.nse.list(byName(rec.name!))).toEqual([]);
      }
    }
    // Concurrent writes: all of them read once they have all returned.
    await Promise.all(Array.from({ length: 30 }, (_, i) => s.nse.put({ name: `c${i}` })));
    expect((await s.nse.list((r) => r.name!.startsWith('c'))).length).toBe(30);
    expect(await s.nse.list()).toHaveLength(80);
    expect(ranges()).toBe(0); // all from the mirror
    expect(mirrorValid(s)).toBe(true);
  });

  it('another store\'s writes reach this store\'s reads through its watch', async () => {
    const prefix = `/two-${randomBytes(4).toString('hex')}/`;
    const mine = store({ prefix });
    const other = store({ prefix }); // another agent on the same etcd
    await mirrored(mine);
    const ranges = countRanges(mine);
    const t0 = Date.now();
    await other.nse.put({ name: 'x', url: 'u1' });
    await waitFor('put seen', async () => (await mine.nse.get('x')) ?? undefined, 5000);
    const seenPut = Date.now() - t0;
    await other.nse.put({ name: 'x', url: 'u2' });
    await waitFor('update seen', async () => ((await mine.nse.get('x'))?.url === 'u2') || undefined, 5000);
    await other.nse.delete('x');
    await waitFor('delete seen', async () => ((await mine.nse.list()).length === 0) || undefined, 5000);
    expect(ranges()).toBe(0);
    expect(seenPut).toBeLessThan(1000); // milliseconds in practice; generous for a loaded host
  });

  it('once etcd is stopped, reads fail with UNAVAILABLE instead of answering from the mirror', async () => {
    const own = await ownEtcd();
    const s = store({ endpoints: [own.endpoint], timeoutMs: 1000 });
    await s.nse.put({ name: 'a' });
    await mirrored(s);
    expect(await s.nse.get('a')).toEqual({ name: 'a' });
    const ac = liveSignal();
    const w = watchInto(s.nse.watch(ac.signal));
    await waitFor('snapshot', () => w.events.length === 1 || undefined, 5000);
    await own.stop();
    // The watch sees the connection close: from then on every read goes to etcd, and fails.
    const err = await waitFor('reads to fail', () => s.nse.get('a').then(() => undefined, (e: AgentError) => e), 3000);
    expect(err).toMatchObject({ name: 'AgentError', code: 'UNAVAILABLE' });
    expect(err.message).toMatch(/etcd/);
    for (let i = 0; i < 3; i++) {
      expect(await rejection(s.nse.get('a'))).toMatchObject({ code: 'UNAVAILABLE' });
      expect(await rejection(s.nse.list())).toMatchObject({ code: 'UNAVAILABLE' });
    }
    expect(mirrorValid(s)).toBe(false);
    await w.done;
    expect((w.error() as AgentError).code).toBe('UNAVAILABLE');
  });

  it('when etcd is back, the mirror is rebuilt: reads show what changed meanwhile, from the mirror again', async () => {
    const prefix = `/back-${randomBytes(4).toString('hex')}/`;
    const p = await proxy(etcd.endpoint);
    const s = store({ endpoints: [p.endpoint], prefix, timeoutMs: 1000 });
    const other = store({ prefix }); // another agent, which keeps its etcd
    await s.nse.put({ name: 'a', url: 'u' });
    await s.nse.put({ name: 'b', url: 'u' });
    await mirrored(s);
    const ac = liveSignal();
    const w = watchInto(s.nse.watch(ac.signal));
    await waitFor('snapshot', () => w.events.length === 2 || undefined, 5000);

    await p.cut(); // etcd gone for this store
    await w.done;
    expect((w.error() as AgentError).code).toBe('UNAVAILABLE');
    expect(await rejection(s.nse.get('a'))).toMatchObject({ code: 'UNAVAILABLE' });
    await other.nse.delete('a');
    await other.nse.put({ name: 'b', url: 'changed' });
    await other.nse.put({ name: 'c', url: 'u' });

    await p.restore();
    const back = await waitFor('reads to work again', () => s.nse.list().then((l) => l, () => undefined), 20_000);
    expect(back.map((r) => `${r.name}=${r.url}`).sort()).toEqual(['b=changed', 'c=u']);
    await mirrored(s);
    const ranges = countRanges(s);
    expect(await s.nse.get('a')).toBeUndefined();
    expect((await s.nse.get('b'))?.url).toBe('changed');
    await other.nse.put({ name: 'd' }); // the new watch delivers
    await waitFor('d seen', async () => (await s.nse.get('d')) ?? undefined, 5000);
    await s.nse.put({ name: 'e' });
    expect(await s.nse.get('e')).toEqual({ name: 'e' });
    expect(ranges()).toBe(0);
    const w2 = watchInto(s.nse.watch(ac.signal));
    await waitFor('new snapshot', () => w2.events.length === 4 || undefined, 5000);
    expect(names(w2.events).sort()).toEqual(['put:b', 'put:c', 'put:d', 'put:e']);
  });

  it('an etcd replaced by a new one (revisions start again): reads show it, own writes still at once', async () => {
    const first = await ownEtcd();
    const p = await proxy(first.endpoint);
    const s = store({ endpoints: [p.endpoint], timeoutMs: 3000 });
    for (let i = 0; i < 40; i++) await s.nse.put({ name: `old${i}` }); // revision 41 and more
    await mirrored(s);
    expect(await s.nse.list()).toHaveLength(40);

    await p.cut();
    await first.stop();
    const second = await ownEtcd(); // empty, revision 1
    await p.restore(second.endpoint);
    await waitFor('reads of the new etcd', () => s.nse.list().then((l) => (l.length === 0 ? l : undefined), () => undefined), 20_000);
    await mirrored(s);
    const ranges = countRanges(s);
    const t0 = Date.now();
    await s.nse.put({ name: 'new' });
    expect(await s.nse.get('new')).toEqual({ name: 'new' });
    // Not a wait for revision 41 that the new etcd has not reached (that would take the 3 s timeout).
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(ranges()).toBe(0);
    expect(mirrorValid(s)).toBe(true);
  });

  it('a connection that goes silent (no reset) ends the mirror through keepalive: reads then fail', { timeout: 40_000 }, async () => {
    const p = await proxy(etcd.endpoint);
    const s = store({ endpoints: [p.endpoint], timeoutMs: 1000 });
    await s.nse.put({ name: 'a' });
    await mirrored(s);
    const ac = liveSignal();
    const w = watchInto(s.nse.watch(ac.signal));
    await waitFor('snapshot', () => w.events.length === 1 || undefined, 5000);
    const t0 = Date.now();
    p.freeze();
    // Keepalive pings every 10 s, unanswered within the 1 s timeout: the watch ends, the mirror with it.
    await waitFor('watch to end', () => (w.error() ? true : undefined), 25_000);
    const took = Date.now() - t0;
    expect((w.error() as AgentError).code).toBe('UNAVAILABLE');
    expect(mirrorValid(s)).toBe(false);
    expect(await rejection(s.nse.get('a'))).toMatchObject({ code: 'UNAVAILABLE' });
    expect(took).toBeLessThan(20_000);
  });

  it('close ends watchers with UNAVAILABLE and refuses further calls', async () => {
    const s = store();
    const ac = liveSignal();
    const w = watchInto(s.nse.watch(ac.signal));
    await s.nse.put({ name: 'a' });
    await waitFor('put', () => w.events.length === 1 || undefined, 5000);
    s.close();
    await w.done;
    expect((w.error() as AgentError).code).toBe('UNAVAILABLE');
    await expect(s.nse.get('a')).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });

  it('reports an unreachable etcd as UNAVAILABLE', async () => {
    const s = new EtcdStore({ endpoints: ['127.0.0.1:1'], timeoutMs: 500 });
    cleanups.push(() => s.close());
    const t0 = Date.now();
    await expect(s.nse.get('a')).rejects.toMatchObject({ name: 'AgentError', code: 'UNAVAILABLE' });
    await expect(s.ns.put({ name: 'svc' })).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await expect(s.nse.list()).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await expect(s.nse.delete('a')).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    const ac = liveSignal();
    const w = watchInto(s.nse.watch(ac.signal));
    await w.done;
    expect((w.error() as AgentError).code).toBe('UNAVAILABLE');
    expect(Date.now() - t0).toBeLessThan(10_000);
  });
});

function sameHandles(a: Map<string, number>, b: Map<string, number>): boolean {
  for (const k of new Set([...a.keys(), ...b.keys()])) if ((a.get(k) ?? 0) < (b.get(k) ?? 0)) return false;
  return true;
}
