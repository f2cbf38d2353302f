// @ts-check
/** Child processes by PID: stopping them, finding them, and line-oriented helpers. */
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { sleep } from './exec.mjs';

/** @param {number} pid */
function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * SIGTERM, then SIGKILL after `graceMs`; for a ChildProcess waits for its exit (reaped).
 * @param {import('node:child_process').ChildProcess | number} p
 * @param {number} [graceMs]
 */
export async function stopPid(p, graceMs = 3000) {
  const child = typeof p === 'object' ? p : undefined;
  const pid = child ? child.pid : /** @type {number} */ (p);
  if (!pid) return;
  const done = () => (child ? child.exitCode !== null || child.signalCode !== null : !alive(pid));
  if (done()) return;
  const exited = child ? new Promise((r) => child.once('exit', r)) : undefined;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const t0 = Date.now();
  while (!done() && Date.now() - t0 < graceMs) await Promise.race(exited ? [exited, sleep(20)] : [sleep(20)]);
  if (!done()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
    if (exited) await exited;
  }
}

/**
 * PIDs whose command line is exactly `argv` (e.g. a daemonized wireguard-go for one device).
 * @param {string[]} argv
 */
export function pidsByArgv(argv) {
  const want = argv.join('\0');
  const out = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0$/, '');
      if (cmd === want || cmd.endsWith(`/${want}`)) out.push(Number(d));
    } catch {}
  }
  return out;
}

/**
 * @typedef {object} LineProc
 * @property {import('node:child_process').ChildProcess} proc
 * @property {() => Promise<string>} next  its next output line
 * @property {(line: string) => Promise<string>} send  writes a line, resolves with the next output line
 * @property {() => Promise<void>} stop
 */

/**
 * A long-lived line-oriented helper process (stdin and stdout piped, stderr passed through).
 * @param {string} cmd
 * @param {string[]} argv
 * @param {import('node:child_process').SpawnOptions} [opts]
 * @returns {LineProc}
 */
export function lineProc(cmd, argv, opts = {}) {
  const p = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'inherit'], ...opts });
  let buf = '';
  /** @type {string[]} */
  const lines = [];
  /** @type {{ resolve: (line: string) => void; reject: (err: Error) => void }[]} */
  const waiters = [];
  const stdout = /** @type {import('node:stream').Readable} */ (p.stdout);
  stdout.setEncoding('utf8');
  stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = waiters.shift();
      if (w) w.resolve(line);
      else lines.push(line);
    }
  });
  p.once('exit', (code) => {
    for (const w of waiters.splice(0)) w.reject(new Error(`${cmd} ${argv.join(' ')} exited (${code})`));
  });
  /** @returns {Promise<string>} */
  const next = () => {
    const line = lines.shift();
    return line !== undefined ? Promise.resolve(line) : new Promise((resolve, reject) => waiters.push({ resolve, reject }));
  };
  return {
    proc: p,
    next,
    send(line) {
      p.stdin?.write(line + '\n');
      return next();
    },
    stop: () => stopPid(p),
  };
}
