/**
 * The signals the agent handles (SIGTERM and SIGINT stop it, SIGHUP reloads it) never meet
 * Node's default action, which ends the process and leaves its vWires behind: not while it
 * starts, and not at READY=1, when it puts its running handlers in place of its start's. As
 * systemd would send them: `systemctl stop` or `reload` right after the start returned.
 */
import { describe, it, expect, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startAgent, stopAll } from '../harness/agent.mjs';
import { isRoot, sleep, uniq } from '../harness/exec.mjs';
import { notifySocket } from '../harness/probe.mjs';

const ROUNDS = 12;

describe.runIf(isRoot)('signals at READY=1', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nsme-signals-'));
  const notifyFile = path.join(dir, 'notify.sock');
  let notify: Awaited<ReturnType<typeof notifySocket>> | undefined;
  afterAll(async () => {
    await stopAll();
    await notify?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** An agent started as systemd starts it (NOTIFY_SOCKET), once it has sent READY=1. */
  async function readyAgent(name: string) {
    notify ??= await notifySocket(notifyFile);
    const agent = await startAgent({ name }, { waitReady: false, dir: path.join(dir, name), env: { ...process.env, NOTIFY_SOCKET: notifyFile } });
    for (;;) {
      const m = await notify.next();
      if (/(^|\n)READY=1/.test(m.msg) && m.msg.includes(`MAINPID=${agent.pid}`)) return agent;
    }
  }

  /**
   * Sends `signal` over and over for `ms` milliseconds, or until the process is gone: a short
   * burst, over before the stop it asks for is (a signal while Node tears the process down,
   * once the agent is stopped, would still end it: systemd counts that as a clean stop).
   */
  function storm(pid: number, signal: NodeJS.Signals, ms: number): void {
    for (const end = performance.now() + ms; performance.now() < end; ) {
      try {
        process.kill(pid, signal);
      } catch {
        return;
      }
    }
  }

  it('SIGTERM as READY=1 arrives stops the agent cleanly, every time', { timeout: 120_000 }, async () => {
    for (let i = 0; i < ROUNDS; i++) {
      const agent = await readyAgent(uniq('sigterm'));
      const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => agent.proc.once('exit', (code, signal) => resolve([code, signal])));
      storm(agent.pid, 'SIGTERM', 1);
      expect(await exited, `round ${i}`).toEqual([0, null]);
    }
  });

  it('SIGHUP as READY=1 arrives reloads the agent, which keeps running', { timeout: 120_000 }, async () => {
    for (let i = 0; i < ROUNDS; i++) {
      const agent = await readyAgent(uniq('sighup'));
      process.kill(agent.pid, 'SIGHUP');
      await sleep(300);
      expect([agent.proc.exitCode, agent.proc.signalCode], `round ${i}`).toEqual([null, null]);
      expect(await agent.stop()).toBe(0);
    }
  });
});
