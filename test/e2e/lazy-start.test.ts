/**
 * An idle agent (one endpoint, the embedded memory registry, no TCP listener) loads neither
 * gRPC nor the D-Bus client before anyone connects; its first clients, however many at once,
 * are served on the unix socket by the gRPC server built for the first of them.
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

  it('serves its first clients, five at once', async () => {
    const status = () =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
        execFile(process.execPath, [BIN, 'status', '--json', '--socket', agent.socket], { timeout: 60_000 }, (err, stdout, stderr) =>
          resolve({ code: err ? Number((err as { code?: number }).code ?? -1) : 0, stdout, stderr }),
        ),
      );
    const first = await Promise.all(Array.from({ length: 5 }, status));
    for (const r of first) {
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).endpoints.map((e: { name: string }) => e.name)).toEqual(['lazy-ep']);
    }
    expect(loaded()).toContain('http2');
  });
});
