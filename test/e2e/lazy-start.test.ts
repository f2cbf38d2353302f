/**
 * An idle agent (one endpoint, the embedded memory registry, no TCP listener) loads neither
 * gRPC nor the D-Bus client before anyone connects, nor for `status` (asked on its systemd
 * socket); its first gRPC clients, however many at once, are served on the unix socket by the
 * gRPC server built for the first of them.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN, startAgent, stopAll, type RunningAgent } from '../harness/agent.mjs';
import { uniq, isRoot, sleep } from '../harness/exec.mjs';
import { addNetns, delNetns } from '../harness/netns.mjs';

const run = isRoot ? describe : describe.skip;
const PRELOAD = path.join(__dirname, '../helpers/loaded-modules.cjs');

run('an idle agent loads gRPC on its first connection', () => {
  const nse = uniq('lazy');
  let agent: RunningAgent;
  let dir: string;
  let modulesFile: string;
  const loaded = () => readFileSync(modulesFile, 'utf8').split('\n').filter(Boolean);

  beforeAll(async () => {
    addNetns(nse);
    dir = mkdtempSync(path.join(os.tmpdir(), 'nsmt-lazy-'));
    modulesFile = path.join(dir, 'modules.txt');
    agent = await startAgent(
      { name: 'host-lazy', endpoints: [{ name: 'lazy-ep', services: ['lazysvc'], cidr: '172.16.83.0/30', netns: nse }] },
      { waitReady: false, nodeArgs: ['--require', PRELOAD], env: { ...process.env, NSMT_LOADED_MODULES: modulesFile } },
    );
    // The systemd socket is opened last, just before READY=1: the agent has started, and
    // nobody has connected to its unix socket.
    const systemdSocket = path.join(agent.dir, 'systemd.sock');
    const deadline = Date.now() + 20_000;
    while (!existsSync(systemdSocket)) {
      if (agent.proc.exitCode !== null) throw new Error(`agent exited: ${agent.logs.join('')}`);
      if (Date.now() > deadline) throw new Error(`agent not started: ${agent.logs.join('')}`);
      await sleep(50);
    }
    await sleep(500);
  });

  afterAll(async () => {
    await stopAll();
    delNetns(nse);
    rmSync(dir, { recursive: true, force: true });
  });

  it('has loaded neither grpc-js, http2 nor the D-Bus client before a client connects', () => {
    const names = loaded();
    // the recorder sees the agent's modules (node:dgram: its netlink and DNS sockets)
    expect(names).toContain('dgram');
    // http2 too, so that this holds however the agent's own modules are packaged
    expect(names.filter((n) => n.includes('/@grpc/') || n === 'http2' || n.includes('/@homebridge/dbus-native/'))).toEqual([]);
  });

  const cli = (args: string[], env: NodeJS.ProcessEnv = process.env) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(process.execPath, args, { timeout: 60_000, env }, (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? -1) : 0, stdout, stderr }),
      ),
    );

  it('answers status on its systemd socket: neither the CLI nor the agent loads gRPC or HTTP/2 for it', async () => {
    const cliModules = path.join(dir, 'cli-modules.txt');
    const r = await cli(['--require', PRELOAD, BIN, 'status', '--json', '--socket', agent.socket], { ...process.env, NSMT_LOADED_MODULES: cliModules });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).endpoints.map((e: { name: string }) => e.name)).toEqual(['lazy-ep']);
    const cliLoaded = readFileSync(cliModules, 'utf8').split('\n').filter(Boolean);
    // the recorder sees the CLI's modules: the call is made by the native addon, without node:net
    expect(cliLoaded.some((n) => n.endsWith('/nsm_native.node'))).toBe(true);
    expect(cliLoaded).not.toContain('net');
    expect(cliLoaded.filter((n) => n.includes('/@grpc/') || n.includes('protobufjs') || n === 'http2' || n.includes('/dist/api/codec'))).toEqual([]);
    expect(loaded().filter((n) => n.includes('/@grpc/') || n === 'http2')).toEqual([]);
  });

  it('serves its first gRPC clients, five at once', async () => {
    const first = await Promise.all(Array.from({ length: 5 }, () => cli([BIN, 'endpoints', '--json', '--socket', agent.socket])));
    for (const r of first) {
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).map((e: { name: string }) => e.name)).toContain('lazy-ep');
    }
    expect(loaded()).toContain('http2');
  });
});
