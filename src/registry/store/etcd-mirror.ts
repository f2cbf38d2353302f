/**
 * The in-process mirror of one etcd record prefix that EtcdStore reads and watches through
 * (see etcd.ts for why and for the consistency it gives).
 *
 * A mirror reads the prefix once at revision R, then watches it from R + 1 (with previous
 * values), so no change is lost or applied twice. It knows the revision it has applied up to
 * (R, then the mod_revision of each change), so a reader can wait until it has applied a given
 * write. It fans each change out to its subscribers (watchers' queues) whose filter accepts it.
 *
 * A mirror is valid from the moment its etcd watch is open until it fails; once failed
 * (watch disconnected, cancelled by etcd, e.g. after a compaction, or closed) it is empty, ends
 * its subscribers with UNAVAILABLE after what they have queued, and is never used again: the
 * owner starts a new one. Records in the mirror are never handed out, only copies.
 */
import type { Etcd3, IKeyValue, Watcher as EtcdWatcher } from 'etcd3';
import { clone } from '../../api/clone';
import { AgentError } from '../../core/errors';
import type { StoreEvent } from './store';
import { WatchQueue } from './queue';

export type Filter<T> = (record: T) => boolean;

export interface MirrorOptions {
  client: Etcd3;
  /** The record prefix (e.g. `/nsm-agent/registry/nse/`). */
  prefix: Buffer;
  /** The record kind, for error messages. */
  what: string;
  /** How long the etcd watch may take to open, and a reader wait for a revision, ms. */
  timeoutMs: number;
  /** Called with R once the initial read is in, before the mirror is valid. */
  onRead?: (revision: bigint) => void;
}

/** Wraps an etcd (or any) failure as AgentError UNAVAILABLE naming etcd. */
export function unavailable(err: unknown, what: string): AgentError {
  if (err instanceof AgentError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new AgentError('UNAVAILABLE', `etcd ${what}: ${msg}`, { cause: err });
}

/** The end of the key range holding every key that starts with `prefix`. */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // all 0xff: to the end of the keyspace
}

/** A record stored as JSON, or undefined for an empty or foreign value. */
export function decode<T>(value: Buffer | undefined): T | undefined {
  if (!value || value.length === 0) return undefined;
  try {
    return JSON.parse(value.toString('utf8')) as T;
  } catch {
    return undefined; // not ours: ignore
  }
}

interface Waiter {
  revision: bigint;
  resolve: (reached: boolean) => void;
  timer: NodeJS.Timeout;
}

export class EtcdMirror<T extends { name?: string }> {
  /** Why the mirror broke (or was closed); set once, then the mirror is never valid again. */
  failed: AgentError | undefined;
  /** Resolves once the mirror is valid or has failed (never rejects: see failed). */
  readonly ready: Promise<void>;
  private watching = false;
  /** Every change up to this etcd revision is applied. */
  private revision = 0n;
  /** Records by their etcd key (utf8). */
  private readonly records = new Map<string, T>();
  private readonly subs = new Map<WatchQueue<T>, Filter<T> | undefined>();
  private readonly waiters = new Set<Waiter>();
  private watcher: EtcdWatcher | undefined;
  private onFail: () => void = () => undefined;
  private readonly failure = new Promise<void>((resolve) => (this.onFail = resolve));

  constructor(private readonly opts: MirrorOptions) {
    this.ready = this.start().catch((err: unknown) => this.fail(unavailable(err, `watch ${opts.what}`)));
  }

  /** True while reads may be answered from the mirror: read, watching, not failed. */
  get valid(): boolean {
    return this.watching && !this.failed;
  }

  /** A copy of the record under `key`. */
  get(key: Buffer): T | undefined {
    const r = this.records.get(key.toString('utf8'));
    return r && clone(r);
  }

  /** Copies of the records `filter` accepts (tested before copying). */
  list(filter?: Filter<T>): T[] {
    const out: T[] = [];
    for (const r of this.records.values()) if (!filter || filter(r)) out.push(clone(r));
    return out;
  }

  /**
   * True once every change up to `revision` is applied (at once if it already is); false if the
   * mirror fails first. A valid mirror that has not applied it within timeoutMs is failed: its
   * watch is not delivering, and it must not go on answering reads.
   */
  caughtUp(revision: bigint): Promise<boolean> {
    if (this.failed) return Promise.resolve(false);
    if (this.watching && this.revision >= revision) return Promise.resolve(true);
    return new Promise((resolve) => {
      const ms = this.opts.timeoutMs;
      const timer = setTimeout(() => {
        this.fail(new AgentError('UNAVAILABLE', `etcd watch ${this.opts.what}: revision ${revision} not delivered within ${ms} ms`));
      }, ms);
      this.waiters.add({ revision, resolve, timer });
    });
  }

  /** A new subscriber: the mirror's matching records, then the changes (same synchronous step). */
  subscribe(filter: Filter<T> | undefined, buffer: number): WatchQueue<T> {
    const snapshot: StoreEvent<T>[] = [];
    for (const r of this.records.values()) if (!filter || filter(r)) snapshot.push({ type: 'put', record: clone(r) });
    const q = new WatchQueue<T>(snapshot, buffer);
    if (this.failed) q.fail(this.failed);
    else this.subs.set(q, filter);
    return q;
  }

  unsubscribe(q: WatchQueue<T>): void {
    this.subs.delete(q);
  }

  /** Ends every subscriber with `err` (after what it has queued), empties the mirror and cancels the etcd watch. */
  fail(err: AgentError): void {
    if (this.failed) return;
    this.failed = err;
    for (const q of this.subs.keys()) q.fail(err);
    this.subs.clear();
    for (const w of [...this.waiters]) this.release(w, false);
    this.records.clear();
    this.onFail();
    this.cancel();
  }

  private async start(): Promise<void> {
    const { client, prefix } = this.opts;
    const end = prefixEnd(prefix);
    const res = await client.kv.range({ key: prefix, range_end: end });
    if (this.failed) return;
    for (const kv of res.kvs) {
      const r = decode<T>(kv.value);
      if (r) this.records.set(kv.key.toString('utf8'), r);
    }
    this.revision = BigInt(res.header.revision);
    this.opts.onRead?.(this.revision);
    await this.openWatch(end);
    if (this.failed) return;
    this.watching = true;
    this.settle();
  }

  /** Opens the etcd watch from revision + 1; resolves when etcd confirms it, or the mirror failed. */
  private openWatch(end: Buffer): Promise<void> {
    const what = this.opts.what;
    // watcher(), not create(): create() waits for 'connected' or 'error' only, and never settles when the
    // watch stream drops before the watch is created ('disconnected'; etcd3 then retries forever).
    const w = this.opts.client
      .watch()
      .inRange({ start: this.opts.prefix, end })
      .startRevision(String(this.revision + 1n))
      .withPreviousKV()
      .watcher();
    this.watcher = w;
    w.on('put', (kv: IKeyValue) => this.applyPut(kv));
    w.on('delete', (kv: IKeyValue, prev?: IKeyValue) => this.applyDelete(kv, prev));
    const broken = (err: unknown) => this.fail(unavailable(err, `watch ${what}`));
    w.on('disconnected', broken);
    w.on('error', broken);
    w.on('end', () => this.fail(new AgentError('UNAVAILABLE', `etcd watch ${what}: watch ended`)));
    let timer: NodeJS.Timeout | undefined;
    const connected = new Promise<void>((resolve) => {
      w.once('connected', () => resolve());
      timer = setTimeout(
        () => this.fail(new AgentError('UNAVAILABLE', `etcd watch ${what}: not created within ${this.opts.timeoutMs} ms`)),
        this.opts.timeoutMs,
      );
    });
    return Promise.race([connected, this.failure]).finally(() => clearTimeout(timer));
  }

  private applyPut(kv: IKeyValue): void {
    const key = kv.key.toString('utf8');
    const r = decode<T>(kv.value);
    if (r) {
      this.records.set(key, r);
      this.fan('put', r);
    } else {
      // Not a record (any more): gone for reads, as for a range read, and for watchers.
      const known = this.records.get(key);
      this.records.delete(key);
      if (known) this.fan('delete', known);
    }
    this.advance(kv.mod_revision);
  }

  private applyDelete(kv: IKeyValue, prev: IKeyValue | undefined): void {
    const key = kv.key.toString('utf8');
    const known = this.records.get(key);
    this.records.delete(key);
    const r = decode<T>(prev?.value) ?? known;
    if (r) this.fan('delete', r);
    this.advance(kv.mod_revision);
  }

  private fan(type: StoreEvent<T>['type'], record: T): void {
    for (const [q, filter] of this.subs) {
      if (filter && !filter(record)) continue;
      if (!q.offer({ type, record: clone(record) }, this.opts.what)) this.subs.delete(q);
    }
  }

  private advance(modRevision: string): void {
    const r = BigInt(modRevision);
    if (r <= this.revision) return;
    this.revision = r;
    if (this.waiters.size) this.settle();
  }

  /** Releases the waiters whose revision is applied (only once the watch is open: see valid). */
  private settle(): void {
    if (!this.watching) return;
    for (const w of [...this.waiters]) if (w.revision <= this.revision) this.release(w, true);
  }

  private release(w: Waiter, reached: boolean): void {
    clearTimeout(w.timer);
    this.waiters.delete(w);
    w.resolve(reached);
  }

  private cancel(): void {
    const w = this.watcher;
    if (!w) return;
    this.watcher = undefined;
    w.removeAllListeners();
    w.on('error', () => undefined);
    w.cancel().catch(() => undefined);
  }
}
