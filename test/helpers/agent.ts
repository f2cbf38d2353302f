/**
 * Runs real `nsm-agent run` processes for end-to-end tests (from dist/, so `npm run build`
 * must have run: `npm test` does it) and the CLI against them. Every agent started here is
 * stopped by PID in stop(), and stopAll() catches what a failing test left.
 */
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import * as grpc from '@grpc/grpc-js';
import { api } from '../../src/api';

export const ROOT = path.resolve(__dirname, '../..');
export const BIN = path.join(ROOT, 'bin/nsm-agent');

export interface RunningAgent {
  dir: string;
  socket: string;
  proc: ChildProcess;
  logs: string[];
  /** Runs the CLI against this agent. */
  cli(args: string[], opts?: { input?: string }): { code: number; stdout: string; stderr: string };
  cliJson<T = any>(args: string[]): T;
  /** Stops by PID; `keepDir` keeps config and state for a restart with startAgent({dir}). */
  stop(signal?: NodeJS.Signals, keepDir?: boolean): Promise<number | null>;
}

const running = new Set<RunningAgent>();

export function cli(socket: string | undefined, args: string[], opts: { input?: string } = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...(socket ? { NSM_AGENT_SOCKET: socket } : {}) },
    input: opts.input,
    timeout: 60_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export interface StartOptions {
  waitReady?: boolean;
  /** Run the agent inside this network namespace (`ip netns exec`), as if on another host. */
  netns?: string;
  /** Reuse this directory (config, socket): a restart of the same agent. */
  dir?: string;
  /**
   * `--cleanup-on-exit` (default true here, so a stopped agent leaves nothing behind): false
   * runs the agent as systemd does, leaving its vWires for the next start to take back.
   */
  cleanupOnExit?: boolean;
}

export async function startAgent(config: Record<string, unknown>, opts: StartOptions = {}): Promise<RunningAgent> {
  const dir = opts.dir ?? mkdtempSync(path.join(os.tmpdir(), 'nsmt-agent-'));
  const socket = path.join(dir, 'agent.sock');
  const cfgFile = path.join(dir, 'agent.yaml');
  const listen = { unix: socket, ...((config['listen'] as object | undefined) ?? {}) };
  // stateDir in the agent's own directory: the dev identity keeps its CA there.
  writeFileSync(cfgFile, YAML.stringify({ logLevel: 'debug', stateDir: dir, ...config, listen }));
  const argv = [BIN, 'run', '--config', cfgFile, ...(opts.cleanupOnExit === false ? [] : ['--cleanup-on-exit'])];
  // `ip netns exec` execs node in place, so proc.pid is the agent's own PID.
  const proc = opts.netns
    ? spawn('ip', ['netns', 'exec', opts.netns, process.execPath, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: string[] = [];
  proc.stdout!.on('data', (d) => logs.push(String(d)));
  proc.stderr!.on('data', (d) => logs.push(String(d)));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const agent: RunningAgent = {
    dir,
    socket,
    proc,
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
      const code = await Promise.race([exited, new Promise<null>((r) => setTimeout(() => r(null), 10_000))]);
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGKILL');
        await exited;
      }
      if (!keepDir) rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
  running.add(agent);
  if (opts.waitReady !== false) {
    const deadline = Date.now() + 15_000;
    while (!existsSync(socket) || !(await healthy(socket))) {
      if (proc.exitCode !== null) throw new Error(`agent exited with ${proc.exitCode}: ${logs.join('')}`);
      if (Date.now() > deadline) throw new Error(`agent not ready: ${logs.join('')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return agent;
}

/** The agent reports its control API SERVING: endpoints registered, listeners up. */
function healthy(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const Health = api().health.grpc.health.v1.Health as unknown as typeof grpc.Client;
    const client = new Health(`unix://${socket}`, grpc.credentials.createInsecure()) as grpc.Client & Record<string, Function>;
    client['Check']!({ service: 'nsmagent.v1.Agent' }, { deadline: Date.now() + 500 }, (err: unknown, res: { status?: string | number }) => {
      client.close();
      resolve(!err && (res?.status === 'SERVING' || res?.status === 1));
    });
  });
}

export async function stopAll(): Promise<void> {
  for (const a of [...running]) await a.stop('SIGKILL');
}
