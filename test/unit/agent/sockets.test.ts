/**
 * The agent's sockets belong to one agent each: agents whose sockets share a directory get
 * their own control sockets, a second agent cannot take over a socket that a live agent
 * answers on, and a socket file nobody listens on (left by kill -9) is replaced.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { controlCall, controlSocketPath, listenControl, type ControlHandlers, type ControlServer } from '../../../src/agent/systemd/control';
import { controlCallSync } from '../../../src/agent/systemd/control-client';
import { listenLocal, type LocalSocket } from '../../../src/agent/local-socket';
import { silentLogger } from '../../../src/core/log';
import type { ReloadResult } from '../../../src/agent/reload';

const dirs: string[] = [];
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => {});
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'nsmt-sockets-'));
  dirs.push(d);
  return d;
}

function handlers(name: string): ControlHandlers {
  return {
    reload: async () => ({ name }) as unknown as ReloadResult,
    unitStart: async () => {
      throw new Error('unused');
    },
    unitStop: async () => false,
    units: () => [],
    status: async () => ({ name }),
  };
}

async function control(p: string, name: string): Promise<ControlServer> {
  const s = await listenControl(p, handlers(name), { log: silentLogger });
  closers.push(() => s.close());
  return s;
}

async function local(p: string): Promise<LocalSocket> {
  const server = new grpc.Server();
  const s = await listenLocal(server, p, { allowUids: [], log: silentLogger });
  closers.push(() => s.close());
  return s;
}

function answers(p: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection(p);
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/** A socket file whose listener was killed with SIGKILL: the file stays, nobody answers. */
function staleSocket(p: string): void {
  const r = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(p)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  expect(r.signal).toBe('SIGKILL');
  expect(existsSync(p)).toBe(true);
}

describe('control sockets', () => {
  it('keep the default agent socket`s documented control socket', () => {
    expect(controlSocketPath('/run/nsm-agent/agent.sock')).toBe('/run/nsm-agent/systemd.sock');
  });

  it('differ for two agents whose sockets share a directory, and reload reaches the right one', async () => {
    const d = tmp();
    const a = controlSocketPath(path.join(d, 'a.sock'));
    const b = controlSocketPath(path.join(d, 'b.sock'));
    expect(a).not.toBe(b);
    expect(path.dirname(a)).toBe(d);
    await control(a, 'a');
    await control(b, 'b');
    expect(await controlCall<{ name: string }>(a, { op: 'reload' })).toEqual({ name: 'a' });
    expect(await controlCall<{ name: string }>(b, { op: 'reload' })).toEqual({ name: 'b' });
  });

  it('refuse a second agent on a live control socket; the first still answers', async () => {
    const p = path.join(tmp(), 'systemd.sock');
    await control(p, 'first');
    const err = await listenControl(p, handlers('second'), { log: silentLogger }).then(
      (s) => {
        closers.push(() => s.close());
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'SOCKET_IN_USE' });
    expect((err as Error).message).toContain(p);
    expect(await controlCall<{ name: string }>(p, { op: 'reload' })).toEqual({ name: 'first' });
  });

  it('tell, made synchronously as the CLI makes them, that no agent answers, as the asynchronous call does', async () => {
    for (const p of [path.join(tmp(), 'missing.sock'), path.join(tmp(), 'stale.sock')]) {
      if (p.endsWith('stale.sock')) staleSocket(p);
      const sync = (() => {
        try {
          controlCallSync(p, { op: 'units' });
        } catch (err) {
          return err;
        }
        return undefined;
      })();
      const async = await controlCall(p, { op: 'units' }).catch((err: unknown) => err);
      expect(sync).toMatchObject({ code: 'UNAVAILABLE', message: `cannot reach the agent at ${p} (is nsm-agent.service running?)` });
      expect(sync).toEqual(async);
    }
  });

  it('replace a stale control socket', async () => {
    const p = path.join(tmp(), 'systemd.sock');
    staleSocket(p);
    await control(p, 'new');
    expect(await controlCall<{ name: string }>(p, { op: 'reload' })).toEqual({ name: 'new' });
  });
});

describe('the agent socket', () => {
  it('is refused to a second agent while a live agent answers on it, and stays the first one`s', async () => {
    const p = path.join(tmp(), 'agent.sock');
    await local(p);
    const server = new grpc.Server();
    const err = await listenLocal(server, p, { allowUids: [], log: silentLogger }).then(
      (s) => {
        closers.push(() => s.close());
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'SOCKET_IN_USE' });
    expect((err as Error).message).toContain(p);
    expect(existsSync(p)).toBe(true);
    expect(await answers(p)).toBe(true);
  });

  it('is taken over when stale (its agent was killed)', async () => {
    const p = path.join(tmp(), 'agent.sock');
    staleSocket(p);
    expect(await answers(p)).toBe(false);
    await local(p);
    expect(await answers(p)).toBe(true);
  });
});
