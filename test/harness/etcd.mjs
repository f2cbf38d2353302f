// @ts-check
/**
 * A throwaway single-node etcd: `etcd --name nsmt-<random>` (the tests' leak check looks for
 * that) on 127.0.0.1 with random high ports, its data dir in a temp dir that stop() removes.
 * Fast elections (heartbeat 10 ms, election 100 ms) so that it is healthy soon after its start.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/**
 * @typedef {object} RunningEtcd
 * @property {string} endpoint  host:port of the client URL (no scheme)
 * @property {() => Promise<void>} stop
 */

/** True when the `etcd` binary is on PATH. */
export function haveEtcd() {
  try {
    execFileSync('etcd', ['--version'], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

const START_ATTEMPTS = 5;
const HEALTHY_WITHIN_MS = 10_000;
const KILL_AFTER_MS = 3_000;

/** Processes still running, killed on exit should a caller forget stop(). */
const live = new Set();
let exitHook = false;

/**
 * @param {{ quotaBackendBytes?: number }} [opts]  `--quota-backend-bytes` (etcd's default if absent)
 * @returns {Promise<RunningEtcd>}
 */
export async function startEtcd(opts = {}) {
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const p of live) p.kill('SIGKILL');
    });
  }
  let last;
  for (let i = 0; i < START_ATTEMPTS; i++) {
    const [client, peer] = await twoFreePorts();
    try {
      return await startOn(client, peer, opts);
    } catch (err) {
      last = err;
    }
  }
  throw new Error(`etcd did not start after ${START_ATTEMPTS} attempts: ${String(last)}`);
}

/**
 * @param {number} clientPort
 * @param {number} peerPort
 * @param {{ quotaBackendBytes?: number }} opts
 * @returns {Promise<RunningEtcd>}
 */
async function startOn(clientPort, peerPort, opts) {
  const name = `nsmt-${randomBytes(4).toString('hex')}`;
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'nsmt-etcd-'));
  const clientUrl = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  // prettier-ignore
  const args = [
    '--name', name, '--data-dir', dataDir,
    '--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl,
    '--listen-peer-urls', peerUrl, '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster', `${name}=${peerUrl}`,
    '--heartbeat-interval', '10', '--election-timeout', '100',
    ...(opts.quotaBackendBytes ? ['--quota-backend-bytes', String(opts.quotaBackendBytes)] : []),
    '--log-level', 'warn', '--logger', 'zap',
  ];
  const proc = spawn('etcd', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  live.add(proc);
  let stderr = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (/** @type {string} */ d) => {
    if (stderr.length < 8192) stderr += d;
  });
  /** @type {Promise<void>} */
  const exited = new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) resolve();
    else proc.once('close', () => resolve()); // after 'exit', once its stderr pipe is closed too
  });
  proc.once('exit', () => live.delete(proc));
  proc.once('error', () => undefined); // spawn failure: shows up as an exit

  /** @type {Promise<void> | undefined} */
  let stopping;
  const stop = () =>
    (stopping ??= (async () => {
      if (proc.exitCode === null && proc.signalCode === null && proc.pid !== undefined) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), KILL_AFTER_MS);
        await exited;
        clearTimeout(t);
      } else {
        await exited;
      }
      proc.stderr.destroy();
      rmSync(dataDir, { recursive: true, force: true });
    })());

  const deadline = Date.now() + HEALTHY_WITHIN_MS;
  let dead = false;
  void exited.then(() => (dead = true));
  for (;;) {
    if (dead) {
      await stop();
      throw new Error(`etcd exited before becoming healthy (ports ${clientPort}/${peerPort}): ${stderr.trim()}`);
    }
    if (await healthy(clientPort)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`etcd not healthy within ${HEALTHY_WITHIN_MS} ms: ${stderr.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return { endpoint: `127.0.0.1:${clientPort}`, stop };
}

/**
 * @param {number} port
 * @returns {Promise<boolean>}
 */
function healthy(port) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/health', agent: false, timeout: 1000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(res.statusCode === 200 && /"health":\s*"true"/.test(body)));
      res.on('error', () => resolve(false));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

/**
 * Two distinct random high ports that could be bound just now (etcd may still lose a race).
 * @returns {Promise<[number, number]>}
 */
async function twoFreePorts() {
  /** @type {number[]} */
  const ports = [];
  while (ports.length < 2) {
    const p = 20_000 + Math.floor(Math.random() * 40_000);
    if (!ports.includes(p) && (await canBind(p))) ports.push(p);
  }
  return [/** @type {number} */ (ports[0]), /** @type {number} */ (ports[1])];
}

/**
 * @param {number} port
 * @returns {Promise<boolean>}
 */
function canBind(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}
