// @ts-check
/**
 * Runs real `nsm-agent run` processes (from dist/: `npm run build` first) and the CLI against
 * them. Each agent has its own directory holding its config file, socket and stateDir. Every
 * agent started here is stopped by PID in stop(); stopAll() catches what a failing test left.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, requireRoot, sleep } from './exec.mjs';
import { healthy } from './clients.mjs';

/** @type {typeof import('yaml')} */
const YAML = requireRoot('yaml');

export { ROOT };
export const BIN = path.join(ROOT, 'bin/nsm-agent');

/** @typedef {{ code: number; stdout: string; stderr: string }} CliResult */

/**
 * @typedef {object} RunningAgent
 * @property {string} dir  its own directory (config, socket, stateDir)
 * @property {string} socket  the unix socket it serves NSM and its control API on
 * @property {string} file  its config file
 * @property {import('node:child_process').ChildProcess} proc
 * @property {number} pid
 * @property {string[]} logs  its stdout and stderr as read (with output 'capture')
 * @property {(args: string[], opts?: { input?: string }) => CliResult} cli  runs the CLI against this agent
 * @property {<T = any>(args: string[]) => T} cliJson  runs the CLI with --json; throws if it fails
 * @property {(signal?: NodeJS.Signals, keepDir?: boolean) => Promise<number | null>} stop
 *   stops it by PID (SIGKILL if `signal` is not enough); `keepDir` keeps config and state for a
 *   restart with startAgent({dir}). Resolves with its exit code.
 */

/**
 * @typedef {object} StartOptions
 * @property {boolean} [waitReady]  wait for health SERVING (default true)
 * @property {string} [netns]  run inside this network namespace (`ip netns exec`), as if on another host
 * @property {string} [dir]  use this directory (made if missing); an existing one is a restart of the same agent
 * @property {boolean} [cleanupOnExit]  `--cleanup-on-exit` (default true, so a stopped agent leaves
 *   nothing behind); false runs it as systemd does, leaving its vWires for the next start to take back
 * @property {'capture' | 'inherit'} [output]  its stdout/stderr kept in `logs` (default) or passed through
 * @property {(line: string) => void} [onLine]  each line of its output, with output 'capture'
 * @property {NodeJS.ProcessEnv} [env]
 * @property {string[]} [nodeArgs]  node options before the agent's script
 * @property {string} [bin]  the agent's script (default bin/nsm-agent of this tree)
 * @property {number} [readyTimeoutMs]  default 15 s
 * @property {number} [readyPollMs]  how often health is asked while waiting (default 50 ms)
 * @property {number} [stopGraceMs]  how long stop() waits before SIGKILL (default 10 s)
 */

/** @type {Set<RunningAgent>} */
const running = new Set();

/**
 * Runs the CLI (against the agent on `socket` if given).
 * @param {string | undefined} socket
 * @param {string[]} args
 * @param {{ input?: string }} [opts]
 * @returns {CliResult}
 */
export function cli(socket, args, opts = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...(socket ? { NSM_AGENT_SOCKET: socket } : {}) },
    input: opts.input,
    timeout: 60_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Writes the agent config of directory `dir`: `config` over the defaults (logLevel debug,
 * stateDir `dir`, the unix socket `dir`/agent.sock). Returns the file's path.
 * @param {string} dir
 * @param {Record<string, unknown>} config
 */
export function writeAgentConfig(dir, config) {
  const file = path.join(dir, 'agent.yaml');
  const listen = { unix: path.join(dir, 'agent.sock'), .../** @type {object | undefined} */ (config['listen'] ?? {}) };
  // stateDir in the agent's own directory: the dev identity keeps its CA there.
  writeFileSync(file, YAML.stringify({ logLevel: 'debug', stateDir: dir, ...config, listen }));
  return file;
}

/**
 * Starts `nsm-agent run` with `config` (see writeAgentConfig) and, unless `waitReady` is
 * false, waits until its health says SERVING.
 * @param {Record<string, unknown>} config
 * @param {StartOptions} [opts]
 * @returns {Promise<RunningAgent>}
 */
export async function startAgent(config, opts = {}) {
  let dir = opts.dir;
  if (dir) mkdirSync(dir, { recursive: true });
  else dir = mkdtempSync(path.join(os.tmpdir(), 'nsmt-agent-'));
  const ownDir = dir;
  const socket = path.join(dir, 'agent.sock');
  const file = writeAgentConfig(dir, config);
  const argv = [...(opts.nodeArgs ?? []), opts.bin ?? BIN, 'run', '--config', file, ...(opts.cleanupOnExit === false ? [] : ['--cleanup-on-exit'])];
  /** @type {import('node:child_process').StdioOptions} */
  const stdio = ['ignore', opts.output === 'inherit' ? 'inherit' : 'pipe', opts.output === 'inherit' ? 'inherit' : 'pipe'];
  // `ip netns exec` execs node in place, so proc.pid is the agent's own PID.
  const proc = opts.netns
    ? spawn('ip', ['netns', 'exec', opts.netns, process.execPath, ...argv], { stdio, env: opts.env })
    : spawn(process.execPath, argv, { stdio, env: opts.env });
  /** @type {string[]} */
  const logs = [];
  for (const stream of [proc.stdout, proc.stderr]) {
    if (!stream) continue;
    let part = '';
    stream.on('data', (d) => {
      logs.push(String(d));
      if (!opts.onLine) return;
      part += String(d);
      let i;
      while ((i = part.indexOf('\n')) >= 0) {
        opts.onLine(part.slice(0, i));
        part = part.slice(i + 1);
      }
    });
  }
  /** @type {Promise<number | null>} */
  const exited = new Promise((resolve) => proc.on('exit', (code) => resolve(code)));
  const graceMs = opts.stopGraceMs ?? 10_000;
  /** @type {RunningAgent} */
  const agent = {
    dir,
    socket,
    file,
    proc,
    pid: proc.pid ?? 0,
    logs,
    cli: (args, o) => cli(socket, args, o),
    cliJson(args) {
      const r = cli(socket, [...args, '--json']);
      if (r.code !== 0) throw new Error(`nsm-agent ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
      return JSON.parse(r.stdout);
    },
    async stop(signal = 'SIGTERM', keepDir = false) {
      running.delete(agent);
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      const code = await Promise.race([exited, sleep(graceMs).then(() => null)]);
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGKILL');
        await exited;
      }
      if (!keepDir) rmSync(ownDir, { recursive: true, force: true });
      return code;
    },
  };
  running.add(agent);
  if (opts.waitReady !== false) {
    try {
      await waitHealthy(agent, opts.readyTimeoutMs ?? 15_000, opts.readyPollMs ?? 50);
    } catch (err) {
      await agent.stop('SIGKILL', Boolean(opts.dir));
      throw err;
    }
  }
  return agent;
}

/**
 * @param {RunningAgent} agent
 * @param {number} timeoutMs
 * @param {number} pollMs
 */
async function waitHealthy(agent, timeoutMs, pollMs) {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(agent.socket) || !(await healthy(agent.socket))) {
    if (agent.proc.exitCode !== null || agent.proc.signalCode !== null) throw new Error(`agent exited with ${agent.proc.exitCode ?? agent.proc.signalCode}: ${agent.logs.join('')}`);
    if (Date.now() > deadline) throw new Error(`agent not ready: ${agent.logs.join('')}`);
    await sleep(pollMs);
  }
}

/** Kills every agent started here and not stopped yet. */
export async function stopAll() {
  for (const a of [...running]) await a.stop('SIGKILL');
}
