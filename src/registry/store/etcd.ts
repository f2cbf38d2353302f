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
 * watch's prev_kv, else from the mirror's copy of it).
 *
 * Mirror: each record kind has one in-process mirror (etcd-mirror.ts) per store, started with
 * the store and kept until close(): the records read once at revision R, then one etcd watch
 * from R + 1 keeps them current. Reads (`get`, `list`) and watchers are answered from it, as
 * copies; a new watcher's snapshot is taken from it in the same synchronous step as its
 * subscription, so joining costs no etcd read (a read of every record per watcher would make
 * many watchers joining at once slow the registry). Each change is fanned out in process to the watchers
 * whose filter accepts it. A watcher with more than `watchBuffer` unread live events ends with
 * AgentError UNAVAILABLE after the events already queued.
 *
 * When the etcd watch breaks (etcd unreachable or restarted, revision compacted, or a write of
 * this store not delivered within the store timeout) the mirror is dropped at once: every
 * watcher ends with UNAVAILABLE (consumers re-Find to resume) and the next read or watch starts
 * a new mirror (read + watch). Until that one is valid, reads are etcd range reads, so while etcd
 * is down they fail with UNAVAILABLE rather than answer from a mirror that no longer
 * follows etcd. gRPC keepalive pings (every 10 s, answered within the store timeout) make a
 * silently lost connection a broken watch too, so a mirror cut off from etcd by a partition is
 * dropped within about 10 s + the timeout instead of being served indefinitely.
 *
 * Consistency of reads:
 * - Own writes are linearizable: every put and delete that changed a key records the revision
 *   etcd gave it, and a read (or a new watcher's snapshot) first waits until the mirror has
 *   applied the highest such revision. The watch delivers it within milliseconds; after the
 *   store timeout the mirror counts as broken and the read goes to etcd.
 * - Other agents' writes are seen once this agent's watch delivers them: typically a few ms,
 *   bounded only by the watch being alive (see above). A read in agent A right after a Register
 *   returned in agent B may miss it for that long. This is what Kubernetes informers give, and
 *   upstream NSM's registry-k8s answers Find from such an informer cache.
 * Why a mirror: a Find read from etcd per call adds an etcd round trip to every Find by name and,
 * by service, a range read of every record with its decoding; answered from the mirror, a Find
 * costs what it costs on the memory store (BENCHMARKS.md, "Registry at scale").
 *
 * Every etcd failure is reported as AgentError UNAVAILABLE.
 */
import type { Etcd3, IKeyValue } from 'etcd3';
import type { NetworkService, NetworkServiceEndpoint } from '../../api';
import { fromTimestamp } from '../../api/time';
import { AgentError } from '../../core/errors';
import { RecordStore, RegistryStore, StoreEvent } from './store';
import { WatchQueue } from './queue';
import { EtcdMirror, Filter, decode, prefixEnd, unavailable } from './etcd-mirror';

export const DEFAULT_ETCD_PREFIX = '/nsm-agent/registry/';
export const DEFAULT_ETCD_WATCH_BUFFER = 64;
const DEFAULT_TIMEOUT_MS = 5_000;
/** gRPC keepalive ping interval on the etcd connection (etcd refuses pings more often than every 5 s). */
const KEEPALIVE_MS = 10_000;

export interface EtcdStoreOptions {
  /** Client URLs or host:port (http:// is assumed when no scheme is given). */
  endpoints: string[];
  /** Key prefix; default `/nsm-agent/registry/`. */
  prefix?: string;
  /**
   * Deadline of each unary etcd call, of connecting, of a keepalive ping's answer, and of a read's
   * wait for the mirror to apply this store's own writes, ms; default 5 s.
   */
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
  private readonly records: { close(): void }[];
  private closed = false;

  constructor(opts: EtcdStoreOptions) {
    if (!opts.endpoints.length) throw new AgentError('INVALID_ARGUMENT', 'etcd store: no endpoints');
    const timeout = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    // etcd3 (with cockatiel, bignumber.js) is loaded here, by agents that use the etcd store only
    const { Etcd3 } = require('etcd3') as typeof import('etcd3');
    this.client = new Etcd3({
      hosts: opts.endpoints.map((e) => (/^[a-z]+:\/\//i.test(e) ? e : `http://${e}`)),
      dialTimeout: timeout,
      defaultCallOptions: (c) => (c.isStream ? {} : { deadline: Date.now() + timeout }),
      // A connection lost without a reset (partition) must end the watch, or the mirror would go stale unnoticed.
      grpcOptions: { 'grpc.keepalive_time_ms': KEEPALIVE_MS, 'grpc.keepalive_timeout_ms': timeout },
    });
    const prefix = opts.prefix ?? DEFAULT_ETCD_PREFIX;
    const cfg = {
      client: this.client,
      buffer: opts.watchBuffer ?? DEFAULT_ETCD_WATCH_BUFFER,
      timeoutMs: timeout,
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
    this.records = [ns, nse];
  }

  /** Ends every watcher (with UNAVAILABLE), drops the mirrors and closes the etcd connection. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const r of this.records) r.close();
    this.client.close();
  }
}

const NO_LEASE = '0';
const hasLease = (lease: string | number | undefined): lease is string | number =>
  lease !== undefined && String(lease) !== NO_LEASE;

interface RecordsConfig {
  client: Etcd3;
  what: string;
  prefix: string;
  buffer: number;
  timeoutMs: number;
  now: () => number;
}

/** One record kind in etcd: writes go to etcd, reads and watches to the mirror (see the module comment). */
class EtcdRecords<T extends { name?: string }> implements RecordStore<T> {
  private readonly client: Etcd3;
  private readonly prefix: Buffer;
  /** The current mirror; replaced by the next read or watch once it has failed. */
  private mirror: EtcdMirror<T>;
  /** The highest etcd revision at which this store changed a key of this kind (0: none yet). */
  private written = 0n;
  /** While a mirror's initial read is out: the highest revision written since it was sent. */
  private writtenWhileReading: bigint | undefined;
  private closed = false;

  constructor(private readonly cfg: RecordsConfig) {
    this.client = cfg.client;
    this.prefix = Buffer.from(cfg.prefix);
    this.mirror = this.startMirror();
  }

  private key(name: string): Buffer {
    return Buffer.concat([this.prefix, Buffer.from(name)]);
  }

  private check(): void {
    if (this.closed) throw new AgentError('UNAVAILABLE', `${this.cfg.what} store: etcd store closed`);
  }

  private startMirror(): EtcdMirror<T> {
    this.writtenWhileReading = 0n;
    return new EtcdMirror<T>({
      client: this.client,
      prefix: this.prefix,
      what: this.cfg.what,
      timeoutMs: this.cfg.timeoutMs,
      onRead: (revision) => this.mirrorRead(revision),
    });
  }

  /** The mirror, a new one if the last has failed. */
  private liveMirror(): EtcdMirror<T> {
    if (this.mirror.failed) this.mirror = this.startMirror();
    return this.mirror;
  }

  /**
   * A new mirror read etcd at `revision`. A linearizable read includes every write finished
   * before it was sent, so `written` can only be above it when etcd's revisions went back (a new
   * cluster, or one restored from a snapshot): the writes before the read are then in it or lost
   * with that history, and only those finished since it was sent remain to be waited for. (Had
   * one of those gone to the old etcd, waiting for it times out once and the next mirror reads again.)
   */
  private mirrorRead(revision: bigint): void {
    const since = this.writtenWhileReading ?? 0n;
    this.writtenWhileReading = undefined;
    if (revision < this.written) this.written = since > revision ? since : revision;
  }

  /** Notes a change this store made at `revision` (from the etcd response header). */
  private wrote(revision: string): void {
    const r = BigInt(revision);
    if (r > this.written) this.written = r;
    if (this.writtenWhileReading !== undefined && r > this.writtenWhileReading) this.writtenWhileReading = r;
  }

  /**
   * The mirror, if it may answer a read: valid and caught up with this store's writes (waited
   * for, up to the store timeout). Undefined while it is being (re)built or once it has failed:
   * the caller reads etcd instead.
   */
  private async readable(): Promise<EtcdMirror<T> | undefined> {
    const m = this.liveMirror();
    if (!m.valid) return undefined;
    const caughtUp = await m.caughtUp(this.written);
    this.check();
    return caughtUp && m.valid ? m : undefined;
  }

  async get(name: string): Promise<T | undefined> {
    this.check();
    const key = this.key(name);
    const m = await this.readable();
    if (m) return m.get(key);
    try {
      const res = await this.client.kv.range({ key });
      return decode<T>(res.kvs[0]?.value);
    } catch (err) {
      throw unavailable(err, `get ${this.cfg.what}`);
    }
  }

  async list(filter?: Filter<T>): Promise<T[]> {
    this.check();
    const m = await this.readable();
    if (m) return m.list(filter);
    let kvs: IKeyValue[];
    try {
      kvs = (await this.client.kv.range({ key: this.prefix, range_end: prefixEnd(this.prefix) })).kvs;
    } catch (err) {
      throw unavailable(err, `list ${this.cfg.what}`);
    }
    // Freshly decoded records are the caller's own copies.
    const out: T[] = [];
    for (const kv of kvs) {
      const r = decode<T>(kv.value);
      if (r && (!filter || filter(r))) out.push(r);
    }
    return out;
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
      this.wrote(res.header.revision);
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
      // Nothing deleted: no change, no revision of ours for reads to wait for.
      if (!prev) return undefined;
      this.wrote(res.header.revision);
      if (hasLease(prev.lease)) this.revoke(prev.lease);
      return decode<T>(prev.value);
    } catch (err) {
      throw unavailable(err, `delete ${this.cfg.what}`);
    }
  }

  /** Best effort: the key no longer uses the lease; if this fails the lease just runs out. */
  private revoke(lease: string | number): void {
    this.client.leaseClient.leaseRevoke({ ID: lease }).catch(() => undefined);
  }

  async *watch(signal: AbortSignal, filter?: Filter<T>): AsyncIterable<StoreEvent<T>> {
    if (signal.aborted) return;
    this.check();
    const m = this.liveMirror();
    let q: WatchQueue<T> | undefined;
    const onAbort = () => q?.notify();
    signal.addEventListener('abort', onAbort);
    try {
      await m.ready;
      // The snapshot includes every change this store made before the watch began.
      if (!m.failed) await m.caughtUp(this.written);
      if (signal.aborted) return;
      if (m.failed) throw m.failed;
      const sub = m.subscribe(filter, this.cfg.buffer);
      q = sub;
      for (;;) {
        if (signal.aborted) return;
        const ev = sub.take();
        if (ev) {
          yield ev;
          continue;
        }
        if (sub.failed) throw sub.failed;
        await sub.waitForChange();
      }
    } finally {
      if (q) m.unsubscribe(q);
      signal.removeEventListener('abort', onAbort);
    }
  }

  close(): void {
    this.closed = true;
    this.mirror.fail(new AgentError('UNAVAILABLE', `${this.cfg.what} watch: etcd store closed`));
  }
}
