/**
 * The agent's state directory (agent.yaml `stateDir`, default /var/lib/nsm-agent): the records
 * of src/core/records.ts, one JSON file per record under `<stateDir>/state/<kind>/`.
 *
 * - Each write goes to a temporary file that is then renamed over the record: a reader (the
 *   next run) sees the old record or the new one, never half of one. Writes are not fsynced:
 *   they only have to survive the process (kill -9, upgrade); after a crash of the host the
 *   kernel objects they describe are gone too.
 * - Writes are batched and written behind: the records put within WRITE_BEHIND_MS (and those
 *   put while a batch is being written) go to disk together as one job on the libuv pool
 *   (sys.applyFileOps), not four node:fs round trips each on the event loop. Writes of one key
 *   are coalesced (only the latest value is written) and land in call order. flush() writes
 *   what is queued at once and waits for all of it; close() flushes. A process killed (-9)
 *   within those milliseconds of a put loses that record, as it would lose one it was writing.
 * - A put of the record as it was last put is no write: elements put their records again on
 *   every refresh (expiries rounded up to about half a token lifetime, see recordExpiry), and
 *   most are unchanged. The record is serialised at put (the caller may change its object
 *   afterwards) and that JSON is kept per key to compare the next put with (a few hundred bytes
 *   per record; cheaper on the connect path than hashing each put).
 * - On open, each kind's files are read back as leftovers. A kind registered with a reaper
 *   has every leftover reaped at its expiry unless claimed first; records that cannot be read
 *   are logged and removed.
 * - One agent per state directory: a `lock` file names the owner's PID. Another live agent's
 *   lock is refused (two agents adopting each other's vWires would tear them down); a lock
 *   left by a dead process is taken over.
 */
import { mkdirSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Clock } from '../../core/clock';
import { AgentError } from '../../core/errors';
import type { Logger } from '../../core/log';
import type { Records } from '../../core/records';
import { applyFileOps, liveArgv } from '../../sys';

export interface KindOptions<T> {
  /** When a leftover that nobody claimed is reaped (epoch ms); past or 0 means at once. */
  expiresOf(value: T): number;
  /** Removes what the record describes (best effort; the record is deleted afterwards). */
  reap(key: string, value: T): Promise<void>;
}

const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * How long a put record waits before its batch is written. A connect puts its records while it
 * is being answered; written at once, the pool thread doing the file system work would take CPU
 * from the answer on a small host. Waiting this long puts the writes after the answer, and
 * gathers a connect's records in one batch.
 */
const WRITE_BEHIND_MS = 5;

class FileRecords<T> implements Records<T> {
  private readonly left = new Map<string, { value: T; cancel?: () => void }>();
  /** Per key: the JSON of the record last put (written, or queued to be). */
  private readonly last = new Map<string, string>();
  private reaper: KindOptions<T> | undefined;

  constructor(
    readonly kind: string,
    private readonly dir: string,
    private readonly store: StateStore,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const f of readdirSync(dir)) {
      const file = path.join(dir, f);
      if (f.endsWith('.tmp')) {
        unlinkSync(file);
        continue;
      }
      if (!f.endsWith('.json')) continue;
      const key = decodeURIComponent(f.slice(0, -'.json'.length));
      try {
        this.left.set(key, { value: JSON.parse(readFileSync(file, 'utf8')) as T });
      } catch (err) {
        store.log.warn('unreadable state record removed', { file, error: err });
        unlinkSync(file);
      }
    }
  }

  private file(key: string): string {
    return `${this.dir}/${encodeURIComponent(key)}.json`;
  }

  /** Starts reaping the leftovers: each at its expiry, unless claimed first. */
  reapWith(opts: KindOptions<T>): void {
    this.reaper = opts;
    for (const [key, l] of this.left) this.schedule(key, l);
  }

  private schedule(key: string, l: { value: T; cancel?: () => void }): void {
    const reaper = this.reaper;
    if (!reaper) return;
    const wait = Math.min(MAX_TIMER_MS, Math.max(0, reaper.expiresOf(l.value) - this.store.clock.now()));
    l.cancel = this.store.clock.after(wait, () => {
      if (this.left.get(key) !== l) return;
      this.left.delete(key);
      this.store.log.info('reaping state left by the previous run', { kind: this.kind, key });
      this.store.track(
        reaper
          .reap(key, l.value)
          .catch((err) => this.store.log.warn('reaping failed', { kind: this.kind, key, error: err }))
          .then(() => this.drop(key)),
      );
    });
  }

  put(key: string, value: T): void {
    const l = this.left.get(key);
    if (l) {
      l.cancel?.();
      this.left.delete(key);
    }
    const json = JSON.stringify(value);
    if (this.last.get(key) === json) return;
    this.last.set(key, json);
    this.write(key, json);
  }

  delete(key: string): void {
    const l = this.left.get(key);
    l?.cancel?.();
    this.left.delete(key);
    this.drop(key);
  }

  private drop(key: string): void {
    this.last.delete(key);
    this.write(key, undefined);
  }

  claim(key: string): T | undefined {
    const l = this.left.get(key);
    if (!l) return undefined;
    l.cancel?.();
    this.left.delete(key);
    return structuredClone(l.value);
  }

  leftovers(): [string, T][] {
    return [...this.left].map(([k, l]) => [k, structuredClone(l.value)]);
  }

  /** Queues the write (JSON) or removal (undefined) of key. */
  private write(key: string, json: string | undefined): void {
    this.store.enqueue(this.file(key), json, (err) => {
      // Not on disk: the same record put again must be written then.
      if (json !== undefined && this.last.get(key) === json) this.last.delete(key);
      this.store.log.warn('cannot write state record', { kind: this.kind, key, error: err });
    });
  }

  stopReaping(): void {
    for (const l of this.left.values()) l.cancel?.();
  }
}

export class StateStore {
  private readonly kinds = new Map<string, FileRecords<unknown>>();
  private readonly inFlight = new Set<Promise<void>>();
  /** Per file: the latest record (JSON) to write, or undefined to remove it, not yet handed to a batch. */
  private readonly queued = new Map<string, { json: string | undefined; failed: (err: unknown) => void }>();
  private startScheduled = false;
  /** The batches being written, until none is queued. */
  private draining: Promise<void> | undefined;

  private readonly lockFile: string;

  constructor(
    /** `<stateDir>/state`. */
    readonly dir: string,
    readonly clock: Clock,
    readonly log: Logger,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.lockFile = path.join(dir, 'lock');
    const owner = lockOwner(this.lockFile);
    if (owner !== undefined && owner !== process.pid) {
      throw new AgentError(
        'FAILED_PRECONDITION',
        `state directory ${path.dirname(dir)} is in use by another agent (PID ${owner}); give each agent its own stateDir in agent.yaml`,
      );
    }
    writeFileSync(this.lockFile, `${process.pid}\n`, { mode: 0o600 });
  }

  /** The records of one kind (e.g. 'wireguard'), with its leftovers read from disk. */
  records<T>(kind: string, reaper?: KindOptions<T>): Records<T> {
    let r = this.kinds.get(kind) as FileRecords<T> | undefined;
    if (!r) {
      r = new FileRecords<T>(kind, path.join(this.dir, kind), this);
      this.kinds.set(kind, r as FileRecords<unknown>);
    }
    if (reaper) r.reapWith(reaper);
    return r;
  }

  /**
   * Queues a record's write (or its removal, json undefined) for the next batch; a later call
   * for the same file before that batch replaces it. The batch starts WRITE_BEHIND_MS after the
   * first record queued for it (flush() starts it at once); batches run one after another, so
   * the writes of one file land in call order. `failed` is called if it could not be done.
   */
  enqueue(file: string, json: string | undefined, failed: (err: unknown) => void): void {
    this.queued.set(file, { json, failed });
    if (this.draining || this.startScheduled) return;
    this.startScheduled = true;
    setTimeout(() => {
      this.startScheduled = false;
      void this.drain();
    }, WRITE_BEHIND_MS);
  }

  /** Writes the queued records, batch after batch, until none is left. */
  private drain(): Promise<void> {
    if (this.draining || this.queued.size === 0) return this.draining ?? Promise.resolve();
    const run = async (): Promise<void> => {
      while (this.queued.size > 0) {
        const batch = [...this.queued];
        this.queued.clear();
        let results: unknown[];
        try {
          results = await applyFileOps(batch.map(([file, q]) => ({ path: file, data: q.json, mode: 0o600 })));
        } catch (err) {
          results = batch.map(() => err);
        }
        batch.forEach(([, q], i) => {
          if (results[i]) q.failed(results[i]);
        });
      }
    };
    this.draining = run().finally(() => {
      this.draining = undefined;
    });
    return this.draining;
  }

  track(p: Promise<void>): void {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  /** Waits for every write queued so far (and those they queue). */
  async flush(): Promise<void> {
    for (;;) {
      if (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
      else if (this.queued.size > 0 || this.draining) await this.drain();
      else return;
    }
  }

  /** Stops the reaping timers (the agent is stopping), flushes and releases the lock. */
  async close(): Promise<void> {
    for (const k of this.kinds.values()) k.stopReaping();
    await this.flush();
    if (lockOwner(this.lockFile) === process.pid) unlinkSync(this.lockFile);
  }
}

/** The live agent holding the lock, if any (a dead or unrelated process does not count). */
function lockOwner(file: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(file, 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  if (pid === process.pid) return pid;
  const argv = liveArgv(pid);
  return argv && /nsm-agent|main\.js/.test(argv.join(' ')) ? pid : undefined;
}
