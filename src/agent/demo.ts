/**
 * `nsm-agent demo`: the quickstart on one host. Makes two namespaces, runs an agent on its
 * embedded defaults with an icmp-responder endpoint in one of them, connects the other,
 * pings across the vWire, prints the status, and removes everything (unless --keep).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '../core/log';
import * as sys from '../sys';
import { parseConfig } from './config';
import { Agent } from './agent';
import { printStatus, viewStatus } from './cli/commands';

const NSE_NS = 'nsm-demo-nse';
const NSC_NS = 'nsm-demo-nsc';

function say(line: string): void {
  process.stdout.write(line + '\n');
}

function ping(netns: string, ip: string): boolean {
  const r = spawnSync('ip', ['netns', 'exec', netns, 'ping', '-c', '3', '-i', '0.2', '-W', '1', ip], { encoding: 'utf8' });
  if (r.error) {
    say(`  (cannot run ping: ${r.error.message}; install iputils-ping)`);
    return false;
  }
  const summary = r.stdout.split('\n').find((l) => l.includes('packets transmitted'));
  say(`  ${netns} -> ${ip}: ${summary ?? r.stderr.trim()}`);
  return r.status === 0;
}

export async function runDemo(opts: { keep: boolean }): Promise<number> {
  if (process.getuid?.() !== 0) {
    say('nsm-agent demo creates network namespaces and interfaces: run it as root.');
    return 2;
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nsm-demo-'));
  const socket = path.join(dir, 'agent.sock');
  const made: string[] = [];
  let agent: Agent | undefined;
  let ok = false;
  try {
    for (const ns of [NSE_NS, NSC_NS]) {
      (await sys.createNetns(ns)).close();
      made.push(ns);
    }
    say(`namespaces: ${NSE_NS} (endpoint side), ${NSC_NS} (client side)`);
    const cfg = parseConfig(
      {
        name: 'demo',
        listen: { unix: socket },
        endpoints: [{ name: 'icmp-responder', services: ['icmp-responder'], cidr: '172.16.1.100/31', netns: NSE_NS, labels: { app: 'icmp' } }],
      },
      '<demo>',
    );
    agent = new Agent(cfg, { log: createLogger({ level: 'warn' }) });
    await agent.start();
    say(`agent "demo" serving on ${socket}, endpoint icmp-responder (172.16.1.100/31) in ${NSE_NS}`);
    const t0 = performance.now();
    const held = await agent.connect('kernel://icmp-responder/nsm-1', NSC_NS, 'demo-1');
    const ipc = held.conn.context?.ip_context;
    say(`connected in ${(performance.now() - t0).toFixed(1)} ms: nsm-1 in ${NSC_NS} ${ipc?.src_ip_addrs?.join(',')} <-> ${ipc?.dst_ip_addrs?.join(',')}`);
    const nse = (ipc?.dst_ip_addrs?.[0] ?? '').split('/')[0] ?? '';
    const nsc = (ipc?.src_ip_addrs?.[0] ?? '').split('/')[0] ?? '';
    ok = ping(NSC_NS, nse) && ping(NSE_NS, nsc);
    const s = agent.status();
    say('');
    say(
      printStatus(viewStatus(JSON.parse(JSON.stringify(s)))),
    );
    say('');
    if (opts.keep) {
      say(`left running. Try: NSM_AGENT_SOCKET=${socket} nsm-agent status`);
      say(`                   ip netns exec ${NSC_NS} ping 172.16.1.100`);
      say('Press Ctrl-C to remove everything.');
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
    }
  } catch (err) {
    say(`demo failed: ${(err as Error).message}`);
  } finally {
    await agent?.stop({ cleanup: true }).catch(() => {});
    for (const ns of made) await sys.deleteNetns(ns).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
    say('removed the namespaces, the vWire and the agent');
  }
  say(ok ? 'demo passed: packets flowed both ways' : 'demo FAILED');
  return ok ? 0 : 1;
}
