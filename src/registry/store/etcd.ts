/**
 * A RegistryStore in etcd (v3 API, through the `etcd3` client), so several agents can share one
 * registry. Records are JSON with proto field names under
 *
 *   <prefix>ns/<name>    NetworkService
 *   <prefix>nse/<name>   NetworkServiceEndpoint
 *
 * (prefix defaults to `/nsm-agent/registry/`).
 *
 * Expiry across agents: the expire element's timer lives in the agent that took the Register,
 * so a record whose agent died would stay forever. A record put with an `expiration_time` is
 * therefore attached to an etcd lease with TTL = ceil(seconds until expiration) + 1; each put
 * grants a new lease and revokes the key's previous one. When the lease runs out etcd deletes
 * the key and every watcher (in every agent) gets a `delete` carrying the last record (from the
 * watch's prev_kv, else from the watcher's own cache of what it has seen).
 *
 * Watch: the current records are read at revision R and the etcd watch starts at R + 1, so no
 * change is lost or seen twice. A watcher with more than `watchBuffer` unread live events, or
 * whose etcd watch stream breaks (etcd unreachable, revision compacted), ends with AgentError
 * UNAVAILABLE after the events already queued; consumers re-Find to resume.
 *
 * Every etcd failure is reported as AgentError UNAVAILABLE.
 */
import { Etcd3, IKeyValue, Watcher as EtcdWatcher } from 'etcd3';
import type { NetworkService, NetworkServiceEndpoint } from '../../api';
import { fromTimestamp } from '../../api/time';
import { AgentError } from '../../core/errors';
import { RecordStore, RegistryStore, StoreEvent } from './store';
import { WatchQueue } from './queue';

export const DEFAULT_ETCD_PREFIX = '/nsm-agent/registry/';
export const DEFAULT_ETCD_WATCH_BUFFER = 64;
const DEFAULT_TIMEOUT_MS = 5_000;

export interface EtcdStoreOptions {
  /** Client URLs or host:port (http:// is assumed when no scheme is given). */
  endpoints: string[];
  /** Key prefix; default `/nsm-agent/registry/`. */
  prefix?: string;
  /** Deadline of each unary etcd call and of connecting, ms; default 5 s. */
  timeoutMs?: number;
  /** Live events a watcher may have unread before it is ended with UNAVAILABLE; default 64. */
  watchBuffer?: number;
  /** Wall clock used to turn expiration_time into a lease TTL; default Date.now. */
  now?: () => number;
}

export class EtcdStore implements RegistryStore {
  readonly ns: RecordStore<NetworkService>;
  readonly nse: RecordStore<NetworkServiceEndpoint>;
  private readonly client: Etcd3;
  private readonly records: EtcdRecords<never>[];
  private closed = false;

  constructor(opts: EtcdStoreOptions) {
    if (!opts.endpoints.length) throw new AgentError('INVALID_ARGUMENT', 'etcd store: no endpoints');
    const timeout = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.client = new Etcd3({
      hosts: opts.endpoints.map((e) => (/^[a-z]+:\/\//i.test(e) ? e : `http://${e}`)),
      dialTimeout: timeout,
      defaultCallOptions: (c) => (c.isStream ? {} : { deadline: Date.now() + timeout }),
    });
    const prefix = opts.prefix ?? DEFAULT_ETCD_PREFIX;
    const cfg = {
      client: this.client,
      buffer: opts.watchBuffer ?? DEFAULT_ETCD_WATCH_BUFFER,
      now: opts.now ?? Date.now,
    };
    const ns = new EtcdRecords<NetworkService>({ ...cfg, what: 'network service', prefix: `${prefix}ns/` });
    const nse = new EtcdRecords<NetworkServiceEndpoint>({
      ...cfg,
      what: 'network service endpoint',
      prefix: `${prefix}nse/`,
    });
    this.ns = ns;
    this.nse = nse;
    this.records = [ns as EtcdRecords<never>, nse as EtcdRecords<never>];
  }

  /** Ends every watcher (with UNAVAILABLE) and closes the etcd connection. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const r of this.records) r.close();
    this.client.close();
  }
}

function unavailable(err: unknown, what: string): AgentError {
  if (err instanceof AgentError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new AgentError('UNAVAILABLE', `etcd ${what}: ${msg}`, { cause: err });
}

/** The end of the key range holding every key that starts with `prefix`. */
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // all 0xff: to the end of the keyspace
}

const NO_LEASE = '0';
const hasLease = (lease: string | number | undefined): lease is string | number =>
  lease !== undefined && String(lease) !== NO_LEASE;

interface RecordsConfig {
  client: Etcd3;
  what: string;
  prefix: string;
  buffer: number;
  now: () => number;
}


class EtcdRecords<T extends { name?: string }> implements RecordStore<T> {
  private readonly client: Etcd3;
  private readonly prefix: Buffer;
  private readonly queues = new Set<WatchQueue<T>>();
  private closed = false;

  constructor(private readonly cfg: RecordsConfig) {
    this.client = cfg.client;
    this.prefix = Buffer.from(cfg.prefix);
  }

  private key(name: string): Buffer {
    return Buffer.concat([this.prefix, Buffer.from(name)]);
  }

  private decode(value: Buffer | undefined): T | undefined {
    if (!value || value.length === 0) return undefined;
    try {
      return JSON.parse(value.toString('utf8')) as T;
    } catch {
      return undefined; // not ours: ignore
    }
  }

  private check(): void {
    if (this.closed) throw new AgentError('UNAVAILABLE', `${this.cfg.what} store: etcd store closed`);
  }

  async get(name: string): Promise<T | undefined> {
    this.check();
    try {
      const res = await this.client.kv.range({ key: this.key(name) });
      return this.decode(res.kvs[0]?.value);
    } catch (err) {
      throw unavailable(err, `get ${this.cfg.what}`);
    }
  }

  async put(record: T): Promise<void> {
    this.check();
    const name = record.name ?? '';
    const value = Buffer.from(JSON.stringify(record));
    const exp = fromTimestamp((record as { expiration_time?: NetworkServiceEndpoint['expiration_time'] }).expiration_time);
    try {
      let lease: string | undefined;
      if (exp !== undefined) {
        const ttl = Math.max(1, Math.ceil((exp - this.cfg.now()) / 1000)) + 1;
        lease = String((await this.client.leaseClient.leaseGrant({ TTL: ttl, ID: 0 })).ID);
      }
      const res = await this.client.kv.put({ key: this.key(name), value, lease: lease ?? 0, prev_kv: true });
      const old = res.prev_kv?.lease;
      if (hasLease(old) && String(old) !== lease) this.revoke(old);
    } catch (err) {
      throw unavailable(err, `put ${this.cfg.what}`);
    }
  }

  async delete(name: string): Promise<T | undefined> {
    this.check();
    try {
      const res = await this.client.kv.deleteRange({ key: this.key(name), prev_kv: true });
      const prev = res.prev_kvs[0];
      if (!prev) return undefined;
      if (hasLease(prev.lease)) this.revoke(prev.lease);
      return this.decode(prev.value);
    } catch (err) {
      throw unavailable(err, `delete ${this.cfg.what}`);
    }
  }

  /** Best effort: the key no longer uses the lease; if this fails the lease just runs out. */
  private revoke(lease: string | number): void {
    this.client.leaseClient.leaseRevoke({ ID: lease }).catch(() => undefined);
  }

  async list(filter?: (record: T) => boolean): Promise<T[]> {
    const { records } = await this.snapshot();
    return filter ? records.filter(filter) : records;
  }

  private async snapshot(): Promise<{ records: T[]; revision: string; byKey: Map<string, T> }> {
    this.check();
    try {
      const res = await this.client.kv.range({ key: this.prefix, range_end: prefixEnd(this.prefix) });
      const records: T[] = [];
      const byKey = new Map<string, T>();
      for (const kv of res.kvs) {
        const r = this.decode(kv.value);
        if (!r) continue;
        records.push(r);
        byKey.set(kv.key.toString('utf8'), this.decode(kv.value) as T);
      }
      return { records, revision: res.header.revision, byKey };
    } catch (err) {
      throw unavailable(err, `list ${this.cfg.what}`);
    }
  }

  async *watch(signal: AbortSignal): AsyncIterable<StoreEvent<T>> {
    if (signal.aborted) return;
    const { records, revision, byKey } = await this.snapshot();
    // Snapshot at `revision`, changes from revision + 1: nothing falls in between.
    const q = new WatchQueue<T>(
      records.map((r) => ({ type: 'put' as const, record: r })),
      this.cfg.buffer,
    );
    let watcher: EtcdWatcher | undefined;
    const onAbort = () => q.notify();
    signal.addEventListener('abort', onAbort);
    this.queues.add(q);
    try {
      try {
        watcher = await this.client
          .watch()
          .inRange({ start: this.prefix, end: prefixEnd(this.prefix) })
          .startRevision(String(BigInt(revision) + 1n))
          .withPreviousKV()
          .create();
      } catch (err) {
        throw unavailable(err, `watch ${this.cfg.what}`);
      }
      const w = watcher;
      // Copies: each event's record is freshly parsed; the cache keeps its own.
      const onPut = (kv: IKeyValue) => {
        const r = this.decode(kv.value);
        if (!r) return;
        byKey.set(kv.key.toString('utf8'), r);
        q.offer({ type: 'put', record: this.decode(kv.value) as T }, this.cfg.what);
      };
      const onDelete = (kv: IKeyValue, prev?: IKeyValue) => {
        const k = kv.key.toString('utf8');
        const known = byKey.get(k);
        byKey.delete(k);
        const r = this.decode(prev?.value) ?? known;
        if (r) q.offer({ type: 'delete', record: r }, this.cfg.what);
      };
      const onBroken = (err: unknown) => q.fail(unavailable(err, `watch ${this.cfg.what}`));
      w.on('put', onPut);
      w.on('delete', onDelete);
      w.on('disconnected', onBroken);
      w.on('error', onBroken);
      w.on('end', () => q.fail(new AgentError('UNAVAILABLE', `etcd watch ${this.cfg.what}: watch ended`)));
      if (signal.aborted) return;
      for (;;) {
        if (signal.aborted) return;
        const ev = q.take();
        if (ev) {
          yield ev;
          continue;
        }
        if (q.failed) throw q.failed;
        await q.waitForChange();
      }
    } finally {
      this.queues.delete(q);
      signal.removeEventListener('abort', onAbort);
      if (watcher) {
        watcher.removeAllListeners();
        watcher.on('error', () => undefined);
        await watcher.cancel().catch(() => undefined);
      }
    }
  }

  close(): void {
    this.closed = true;
    for (const q of this.queues) q.fail(new AgentError('UNAVAILABLE', `${this.cfg.what} watch: etcd store closed`));
  }
}
