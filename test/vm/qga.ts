/**
 * Clients for qemu's two control sockets, without dependencies:
 *
 * - {@link GuestAgent}: qemu-guest-agent on a virtio-serial port (commands with stdout, stderr and
 *   exit code; small files). One connection per call: the port takes one client at a time and the
 *   guest side restarts with every reboot, so a fresh `guest-sync-delimited` per call is what
 *   makes it reliable. Calls to one VM are serialized here.
 * - {@link qmp}: the QMP monitor (hot-plugging a disk).
 */
import net from 'node:net';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

class Session {
  private buf = Buffer.alloc(0);
  private synced = false;
  private waiters: ((m: Record<string, unknown>) => void)[] = [];

  private constructor(private readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => this.data(d));
    sock.on('error', () => {});
  }

  static open(path: string, timeoutMs: number): Promise<Session> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection(path);
      const t = setTimeout(() => {
        s.destroy();
        reject(new Error(`guest agent ${path}: connect timeout`));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(t);
        resolve(new Session(s));
      });
      s.once('error', (e) => {
        clearTimeout(t);
        reject(e);
      });
    });
  }

  close(): void {
    this.sock.destroy();
  }

  private data(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    if (!this.synced) {
      // guest-sync-delimited's reply starts with 0xFF: everything before it is stale.
      const i = this.buf.lastIndexOf(0xff);
      if (i < 0) {
        this.buf = Buffer.alloc(0);
        return;
      }
      this.buf = this.buf.subarray(i + 1);
      this.synced = true;
    }
    let nl: number;
    while ((nl = this.buf.indexOf(10)) >= 0) {
      const line = this.buf.subarray(0, nl).toString().trim();
      this.buf = this.buf.subarray(nl + 1);
      if (!line) continue;
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line);
      } catch {
        continue;
      }
      this.waiters.shift()?.(msg);
    }
  }

  cmd<T = unknown>(execute: string, args?: Record<string, unknown>, timeoutMs = 10_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`guest agent: timeout waiting for ${execute}`)), timeoutMs);
      this.waiters.push((m) => {
        clearTimeout(t);
        const err = m['error'] as { desc?: string } | undefined;
        if (err) reject(new Error(`guest agent ${execute}: ${err.desc}`));
        else resolve(m['return'] as T);
      });
      this.sock.write(JSON.stringify(args ? { execute, arguments: args } : { execute }) + '\n');
    });
  }

  /** Resets the guest's parser and skips replies meant for earlier syncs. */
  sync(timeoutMs: number): Promise<void> {
    const id = Math.floor(Math.random() * 1e9);
    this.synced = false;
    this.sock.write(Buffer.from([0xff]));
    this.sock.write(JSON.stringify({ execute: 'guest-sync-delimited', arguments: { id } }) + '\n');
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('guest agent: no answer to guest-sync-delimited')), timeoutMs);
      const w = (m: Record<string, unknown>): void => {
        if (m['return'] === id) {
          clearTimeout(t);
          resolve();
        } else {
          this.synced = false;
          this.waiters.unshift(w);
        }
      };
      this.waiters.push(w);
    });
  }
}

export class GuestAgent {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(readonly path: string) {}

  /** Runs `fn` on a fresh, synced connection, after the calls before it. */
  private use<T>(fn: (s: Session) => Promise<T>, syncMs = 5_000): Promise<T> {
    const next = this.queue.then(async () => {
      const s = await Session.open(this.path, 5_000);
      try {
        await s.sync(syncMs);
        return await fn(s);
      } finally {
        s.close();
      }
    });
    this.queue = next.catch(() => {});
    return next;
  }

  /** True if the guest agent answers within about `ms`. */
  async ping(ms = 1_500): Promise<boolean> {
    try {
      await this.use((s) => s.cmd('guest-ping', undefined, ms), ms);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Runs argv in the guest; code 124 when it outlives `timeoutMs` (the guest process is left
   * running). The connection is let go between polls, so other calls to this VM (or another
   * client) can run meanwhile.
   */
  async exec(argv: string[], timeoutMs = 120_000, input?: string): Promise<ExecResult> {
    const a: Record<string, unknown> = { path: argv[0], arg: argv.slice(1), 'capture-output': true };
    if (input !== undefined) a['input-data'] = Buffer.from(input).toString('base64');
    const { pid } = await this.use((s) => s.cmd<{ pid: number }>('guest-exec', a));
    const end = Date.now() + timeoutMs;
    let delay = 10;
    for (;;) {
      const st = await this.use((s) => s.cmd<Record<string, unknown>>('guest-exec-status', { pid }));
      if (st['exited']) {
        const dec = (k: string): string => Buffer.from(String(st[k] ?? ''), 'base64').toString();
        const code = (st['exitcode'] as number | undefined) ?? 128 + ((st['signal'] as number | undefined) ?? 0);
        return { code, stdout: dec('out-data'), stderr: dec('err-data') };
      }
      if (Date.now() > end) return { code: 124, stdout: '', stderr: `timed out after ${timeoutMs} ms\n` };
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 250);
    }
  }

  /** Writes a small file in the guest. */
  writeFile(remote: string, data: string | Buffer): Promise<void> {
    return this.use(async (s) => {
      const h = await s.cmd<number>('guest-file-open', { path: remote, mode: 'w' });
      const b = Buffer.from(data);
      for (let off = 0; off < b.length; off += 1 << 20) {
        await s.cmd('guest-file-write', { handle: h, 'buf-b64': b.subarray(off, off + (1 << 20)).toString('base64') }, 60_000);
      }
      await s.cmd('guest-file-close', { handle: h });
    });
  }
}

/** Sends QMP commands in order on a fresh connection; returns their replies; throws on an error reply. */
export function qmp(path: string, commands: Record<string, unknown>[], timeoutMs = 15_000): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const queue = [{ execute: 'qmp_capabilities' }, ...commands];
    const replies: unknown[] = [];
    let buf = '';
    let last: unknown;
    const s = net.createConnection(path);
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error(`qmp ${path}: timeout`));
    }, timeoutMs);
    const done = (err?: Error): void => {
      clearTimeout(t);
      s.destroy();
      if (err) reject(err);
      else resolve(replies.slice(1));
    };
    s.on('error', (e) => done(e));
    s.on('data', (d) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        if (!line) continue;
        const m = JSON.parse(line);
        if (m.event) continue;
        if (m.error) return done(new Error(`qmp ${JSON.stringify(last)}: ${JSON.stringify(m.error)}`));
        if ('return' in m) replies.push(m.return);
        // The greeting or a reply: send the next command.
        const next = queue.shift();
        if (next === undefined) return done();
        last = next;
        s.write(JSON.stringify(next) + '\n');
      }
    });
  });
}
