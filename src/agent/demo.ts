/**
 * `nsm-agent demo`: the quickstart, a small mesh on this machine. Builds three "hosts" (network
 * namespaces on one bridge, each running its own `nsm-agent run`): host-c runs the registry,
 * host-b provides an icmp-responder endpoint, host-a connects a client namespace to it. The
 * two agents negotiate a WireGuard vWire with the NSM protocol; the demo pings across it both
 * ways, prints both agents' status and removes everything it made (unless --keep).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import * as sys from '../sys';
import { LocalCa, writeAtomic } from '../spire/ca';
import { toPem } from '../spire/x509';
import { connect, getStatus, printStatus } from './cli/commands';
import { controlCall, controlSocketPath } from './systemd/control-client';

const PREFIX = 'nsm-demo';
const UNDERLAY = `${PREFIX}-ul`;
const NSC_NS = `${PREFIX}-nsc`;
const NSE_NS = `${PREFIX}-nse`;
const NET = '10.222.0';

interface DemoHost {
  name: string;
  netns: string;
  ip: string;
  socket: string;
  proc?: ChildProcess;
}

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

/** The underlay: a bridge in its own namespace, one namespace per host with eth0 on it. */
async function buildUnderlay(hosts: DemoHost[], made: string[]): Promise<void> {
  const ul = await sys.createNetns(UNDERLAY);
  made.push(UNDERLAY);
  try {
    const ulRtnl = sys.Rtnl.for(ul);
    const br = await sys.createBridge(ulRtnl, 'br0');
    for (const [i, h] of hosts.entries()) {
      const ns = await sys.createNetns(h.netns);
      made.push(h.netns);
      try {
        const rtnl = sys.Rtnl.for(ns);
        const pair = await sys.createVethPair(ulRtnl, { name: 'eth0', ns, up: true }, { name: `port${i}`, ns: ul, up: true });
        await sys.setMaster(ulRtnl, pair.b.index, br.index);
        await sys.setLinkUp(rtnl, 'lo', true);
        await sys.addAddress(rtnl, pair.a.index, `${h.ip}/24`);
        await sys.replaceRoute(rtnl, { dst: '0.0.0.0/0', index: pair.a.index, scope: 'link' });
      } finally {
        ns.close();
      }
    }
  } finally {
    ul.close();
  }
}

/**
 * One trust domain for the demo mesh: a CA and an SVID per host, as `nsm-agent identity` makes
 * them, for `identity.source: files` (the development identity is loopback-only).
 */
function issueIdentities(hosts: DemoHost[], dir: string): Map<string, Record<string, unknown>> {
  const ca = LocalCa.create({ trustDomain: 'demo.nsm', ttlMs: 3600_000 });
  const out = new Map<string, Record<string, unknown>>();
  for (const h of hosts) {
    const svid = ca.issue(`spiffe://demo.nsm/agent/${h.name}`, { ttlMs: 3600_000 });
    const files = { cert: path.join(dir, `${h.name}.svid.pem`), key: path.join(dir, `${h.name}.svid.key`), bundle: path.join(dir, 'bundle.pem') };
    writeAtomic(files.key, svid.key.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
    writeAtomic(files.cert, toPem(svid.chain), 0o644);
    writeAtomic(files.bundle, toPem(ca.bundle()), 0o644);
    out.set(h.name, { source: 'files', files });
  }
  return out;
}

/** Starts `nsm-agent run` inside the host's namespace (the child is forked while in it). */
function startAgent(h: DemoHost, dir: string, identity: Record<string, unknown>, config: Record<string, unknown>): ChildProcess {
  const file = path.join(dir, `${h.name}.yaml`);
  const doc = { name: h.name, logLevel: 'warn', stateDir: path.join(dir, h.name), identity, listen: { unix: h.socket, tcp: `${h.ip}:5001` }, ...config };
  writeFileSync(file, YAML.stringify(doc));
  const ns = sys.openNetns(h.netns);
  try {
    const script = process.argv[1] ?? '';
    return sys.withNetns(ns, () => spawn(process.execPath, [script, 'run', '--config', file, '--cleanup-on-exit'], { stdio: ['ignore', 'inherit', 'inherit'] }));
  } finally {
    ns.close();
  }
}

/**
 * Waits until the agent has started: its systemd socket answers, which it opens last, once its
 * endpoints are registered (its gRPC socket accepts connections earlier than that).
 */
async function waitServing(h: DemoHost, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (h.proc?.exitCode !== null && h.proc?.exitCode !== undefined) throw new Error(`the agent of ${h.name} exited with ${h.proc.exitCode}`);
    if (existsSync(h.socket)) {
      const started = await controlCall(controlSocketPath(h.socket), { op: 'units' }, 2_000).then(
        () => true,
        () => false,
      );
      if (started) return;
    }
    if (Date.now() > end) throw new Error(`the agent of ${h.name} did not start`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function stopAgent(h: DemoHost): Promise<void> {
  const p = h.proc;
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => p.once('exit', () => resolve()));
  p.kill('SIGTERM');
  const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
  await gone;
  clearTimeout(t);
}

export async function runDemo(opts: { keep: boolean }): Promise<number> {
  if (process.getuid?.() !== 0) {
    say('nsm-agent demo creates network namespaces and interfaces: run it as root.');
    return 2;
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nsm-demo-'));
  const hosts: DemoHost[] = ['a', 'b', 'c'].map((x, i) => ({
    name: `host-${x}`,
    netns: `${PREFIX}-${x}`,
    ip: `${NET}.${i + 1}`,
    socket: path.join(dir, `host-${x}.sock`),
  }));
  const [a, b, c] = hosts as [DemoHost, DemoHost, DemoHost];
  const made: string[] = [];
  let ok = false;
  try {
    await buildUnderlay(hosts, made);
    for (const ns of [NSC_NS, NSE_NS]) {
      (await sys.createNetns(ns)).close();
      made.push(ns);
    }
    say(`hosts: ${hosts.map((h) => `${h.name} ${h.ip} (netns ${h.netns})`).join(', ')} on a bridge in ${UNDERLAY}`);
    const ids = issueIdentities(hosts, dir);
    say(`identities: trust domain demo.nsm, one X.509-SVID per host; every hop is mutual TLS with signed NSM tokens`);
    const registry = `tcp://${c.ip}:5002`;
    c.proc = startAgent(c, dir, ids.get(c.name)!, { registry: { url: 'embedded' } });
    await waitServing(c);
    say(`${c.name}: registry on ${registry}`);
    b.proc = startAgent(b, dir, ids.get(b.name)!, {
      registry: { url: registry },
      endpoints: [{ name: 'icmp-responder', services: ['icmp-responder'], cidr: '172.16.1.100/31', netns: NSE_NS, labels: { app: 'icmp' } }],
    });
    a.proc = startAgent(a, dir, ids.get(a.name)!, { registry: { url: registry } });
    await Promise.all([waitServing(b), waitServing(a)]);
    say(`${b.name}: endpoint icmp-responder (172.16.1.100/31) in ${NSE_NS}`);
    say(`${a.name}: connecting ${NSC_NS} to kernel://icmp-responder/nsm-1`);

    const t0 = performance.now();
    const conn = await connect(a.socket, 'kernel://icmp-responder/nsm-1', NSC_NS, 'demo-1');
    say(`connected in ${(performance.now() - t0).toFixed(1)} ms: nsm-1 in ${NSC_NS} ${conn.srcIps.join(',')} <-> ${conn.dstIps.join(',')}`);
    const nse = (conn.dstIps[0] ?? '').split('/')[0] ?? '';
    const nsc = (conn.srcIps[0] ?? '').split('/')[0] ?? '';
    ok = ping(NSC_NS, nse) && ping(NSE_NS, nsc);
    for (const h of [a, b]) {
      say('');
      say(printStatus(await getStatus(h.socket)));
    }
    say('');
    if (opts.keep) {
      say('left running. Try:');
      say(`  NSM_AGENT_SOCKET=${a.socket} nsm-agent status`);
      say(`  ip netns exec ${NSC_NS} ping 172.16.1.100`);
      say('Press Ctrl-C to remove everything.');
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
    }
  } catch (err) {
    say(`demo failed: ${(err as Error).message}`);
    ok = false;
  } finally {
    // The client's agent first: it closes the vWire on both hosts.
    for (const h of [a, b, c]) await stopAgent(h).catch(() => {});
    for (const ns of made.reverse()) await sys.deleteNetns(ns).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
    say('removed the agents, the vWire and the namespaces');
  }
  say(ok ? 'demo passed: packets flowed both ways' : 'demo FAILED');
  return ok ? 0 : 1;
}
