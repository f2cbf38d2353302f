/**
 * End to end, as root with real namespaces: composed services (upstream NSM's selective
 * composition and nse-composition). Passthrough endpoints request the service again with their
 * own labels; the service's matches route by source_selector from element to element; an
 * nftables `bridge` table in a passthrough's namespace filters what crosses it.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { startAgent, stopAll, type RunningAgent } from '../harness/agent.mjs';
import { buildHosts, type Mesh } from '../harness/hosts.mjs';
import { uniq, isRoot, until } from '../harness/exec.mjs';
import { addNetns, delNetns, links, addrs, ping } from '../harness/netns.mjs';
import { FakeWorkloadApi } from '../helpers/spire/workload-api';

const run = isRoot ? describe : describe.skip;

/** TCP listeners on `ports` in a namespace (python3); resolves when they listen. */
async function listenTcp(netns: string, ports: number[]): Promise<ChildProcess> {
  const code = [
    'import socket,select,sys',
    'ss=[]',
    `for p in ${JSON.stringify(ports)}:`,
    '  s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind(("0.0.0.0",p)); s.listen(16); ss.append(s)',
    'print("ok",flush=True)',
    'while True:',
    '  r,_,_=select.select(ss,[],[])',
    '  for s in r: c,_=s.accept(); c.close()',
  ].join('\n');
  const p = spawn('ip', ['netns', 'exec', netns, 'python3', '-c', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    p.stdout!.once('data', () => resolve());
    p.once('exit', (c) => reject(new Error(`tcp listener exited ${c}`)));
  });
  return p;
}

/** True if a TCP connection from `netns` to ip:port is accepted within 3 s. */
function tcpOpens(netns: string, ip: string, port: number): boolean {
  const r = spawnSync('ip', ['netns', 'exec', netns, 'timeout', '3', 'bash', '-c', `exec 3<>/dev/tcp/${ip}/${port}`], { stdio: 'ignore' });
  return r.status === 0;
}

/** An nftables bridge table in `netns` that drops TCP to `port` crossing its bridges, and counts it. */
function dropTcpPort(netns: string, port: number): void {
  const rules = `table bridge nsmt {\n  chain forward {\n    type filter hook forward priority 0; policy accept;\n    tcp dport ${port} counter drop\n  }\n}\n`;
  const r = spawnSync('ip', ['netns', 'exec', netns, 'nft', '-f', '-'], { input: rules, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`nft in ${netns}: ${r.stderr}`);
}

/** Packets the drop rule of dropTcpPort counted. */
function dropped(netns: string): number {
  const r = spawnSync('ip', ['netns', 'exec', netns, 'nft', 'list', 'table', 'bridge', 'nsmt'], { encoding: 'utf8' });
  return Number(/counter packets (\d+)/.exec(r.stdout)?.[1] ?? -1);
}

/** The namespace's links other than lo. */
const ownLinks = (netns: string) => links(netns).filter((l) => l.ifname !== 'lo');

function applyService(agent: RunningAgent, dir: string, name: string, matches: unknown[]): void {
  const f = path.join(dir, `${name}.yaml`);
  writeFileSync(f, YAML.stringify({ apiVersion: 'networkservicemesh.io/v1', kind: 'NetworkService', metadata: { name }, spec: { payload: 'IP', matches } }));
  const r = agent.cli(['apply', '-f', f]);
  if (r.code !== 0) throw new Error(`apply ${name}: ${r.stderr}`);
}

const route = (source: Record<string, string>, app: string) => ({ source_selector: source, routes: [{ destination_selector: { app } }] });

run('selective composition (one agent)', () => {
  const gw = uniq('cgw');
  const ips = uniq('cips');
  const dead = uniq('cdead');
  const v11 = uniq('cv11');
  const v12 = uniq('cv12');
  let agent: RunningAgent;
  let dir: string;
  let listener: ChildProcess | undefined;

  beforeAll(async () => {
    for (const ns of [gw, ips, dead, v11, v12]) addNetns(ns);
    dir = mkdtempSync(path.join(os.tmpdir(), 'nsmt-composition-'));
    agent = await startAgent({
      name: 'host-comp',
      endpoints: [
        { name: 'gateway', services: ['secure-intranet'], cidr: '172.16.9.0/29', netns: gw, labels: { app: 'gateway' } },
        { name: 'ips', services: ['secure-intranet'], passthrough: true, netns: ips, labels: { app: 'ips' } },
        { name: 'dead-end', services: ['dead-end'], passthrough: true, netns: dead, labels: { app: 'firewall' } },
      ],
    });
    applyService(agent, dir, 'secure-intranet', [route({ version: 'v1.1' }, 'ips'), route({ app: 'ips' }, 'gateway'), route({ version: 'v1.2' }, 'gateway')]);
    listener = await listenTcp(gw, [80, 8080]);
    dropTcpPort(ips, 80);
  }, 60_000);

  afterAll(async () => {
    listener?.kill('SIGKILL');
    await stopAll();
    for (const ns of [gw, ips, dead, v11, v12]) delNetns(ns);
    rmSync(dir, { recursive: true, force: true });
  });

  it('leads v1.1 through the IPS and v1.2 straight to the gateway', () => {
    const c11 = agent.cliJson(['connect', 'kernel://secure-intranet/nsm-1?version=v1.1', '--netns', v11, '--id', 'v11']);
    const c12 = agent.cliJson(['connect', 'kernel://secure-intranet/nsm-1?version=v1.2', '--netns', v12, '--id', 'v12']);
    // Only the gateway assigns addresses; the IPS's two interfaces are bridge ports without any.
    const gwIp = c11.dstIps[0].split('/')[0];
    expect(c11.dstIps).toEqual([`${gwIp}/32`]);
    expect(c12.dstIps[0]).toMatch(/^172\.16\.9\./);
    const ipsLinks = ownLinks(ips);
    expect(ipsLinks.map((l) => l.ifname).sort()).toEqual(expect.arrayContaining([expect.stringMatching(/^nsmbr-/)]));
    expect(ipsLinks).toHaveLength(3);
    for (const l of ipsLinks) expect(addrs(ips, l.ifname).filter((a) => !a.startsWith('fe80:'))).toEqual([]);
    const status = agent.cliJson(['status']);
    expect(status.connections.find((x: any) => x.clientId === 'v11')).toMatchObject({ state: 'UP', endpoint: 'ips' });
    expect(status.connections.find((x: any) => x.clientId === 'v12')).toMatchObject({ state: 'UP', endpoint: 'gateway' });

    expect(ping(v11, gwIp)).toBe(true);
    expect(ping(v12, c12.dstIps[0].split('/')[0])).toBe(true);
    expect(tcpOpens(v12, c12.dstIps[0].split('/')[0], 80)).toBe(true);
    expect(tcpOpens(v11, gwIp, 8080)).toBe(true);
    expect(tcpOpens(v11, gwIp, 80)).toBe(false);
    expect(dropped(ips)).toBeGreaterThan(0);

    // A refresh keeps the chain (same next hop, same interfaces).
    const again = agent.cliJson(['connect', 'kernel://secure-intranet/nsm-1?version=v1.1', '--netns', v11, '--id', 'v11']);
    expect(again.dstIps).toEqual(c11.dstIps);
    expect(ownLinks(ips).map((l) => l.ifname).sort()).toEqual(ipsLinks.map((l) => l.ifname).sort());
    expect(ping(v11, gwIp)).toBe(true);

    // Closing the client's connection closes the chain's downstream one: nothing is left.
    expect(agent.cli(['disconnect', 'v11']).code).toBe(0);
    expect(ownLinks(ips)).toEqual([]);
    expect(ownLinks(v11)).toEqual([]);
    expect(ownLinks(gw)).toHaveLength(1); // v1.2's
    expect(agent.cli(['disconnect', 'v12']).code).toBe(0);
    expect(ownLinks(gw)).toEqual([]);
    expect(agent.cliJson(['status']).connections).toEqual([]);
  }, 60_000);

  it('refuses a passthrough with no further endpoint, naming the service and its labels, and leaves nothing', () => {
    const r = agent.cli(['connect', 'kernel://dead-end/nsm-1', '--netns', v11, '--id', 'dead-1']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/NO_CANDIDATES/);
    expect(r.stderr).toMatch(/passthrough endpoint dead-end: no next endpoint of dead-end for its labels \{app=firewall\}/);
    expect(ownLinks(dead)).toEqual([]);
    expect(ownLinks(v11)).toEqual([]);
    expect(agent.cliJson(['status']).connections).toEqual([]);
  }, 30_000);
});

run('a three-element chain across two hosts (nse-composition)', () => {
  let mesh: Mesh;
  let nsc: string;
  let nscB: string;
  let ptA: string;
  let fw: string;
  let gw: string;
  let listener: ChildProcess | undefined;
  let dir: string;
  let hostB: Record<string, unknown>;
  const spire: FakeWorkloadApi[] = [];
  // host-b's registry keeps the service in memory: applied again after host-b restarts.
  const applyComposition = () =>
    applyService(mesh.hosts[1]!.agent!, dir, 'nse-composition', [
      route({ app: 'passthrough-1' }, 'firewall'),
      route({ app: 'firewall' }, 'gateway'),
      route({}, 'passthrough-1'),
    ]);

  beforeAll(async () => {
    const first = await FakeWorkloadApi.start({ trustDomains: ['example.org'], entries: [{ id: 'spiffe://example.org/host-a', ttlMs: 600_000 }] });
    spire.push(first, await FakeWorkloadApi.start({ sameCasAs: first, entries: [{ id: 'spiffe://example.org/host-b', ttlMs: 600_000 }] }));
    mesh = await buildHosts(2, 'cp');
    nsc = mesh.netns('nsc');
    nscB = mesh.netns('nscb');
    ptA = mesh.netns('pta');
    fw = mesh.netns('fw');
    gw = mesh.netns('gw');
    dir = mkdtempSync(path.join(os.tmpdir(), 'nsmt-composition-'));
    const [a, b] = mesh.hosts;
    await mesh.start(1, (hostB = {
      identity: { source: 'spiffe', socket: spire[1]!.address },
      listen: { tcp: `${b!.ip}:5001` },
      registry: { url: 'embedded', listen: `${b!.ip}:5002` },
      endpoints: [
        { name: 'firewall', services: ['nse-composition'], passthrough: true, netns: fw, labels: { app: 'firewall' } },
        { name: 'gateway', services: ['nse-composition'], cidr: '172.16.1.100/31', netns: gw, labels: { app: 'gateway' } },
      ],
    }));
    await mesh.start(0, {
      identity: { source: 'spiffe', socket: spire[0]!.address },
      listen: { tcp: `${a!.ip}:5001` },
      registry: { url: `tcp://${b!.ip}:5002` },
      endpoints: [{ name: 'passthrough-1', services: ['nse-composition'], passthrough: true, netns: ptA, labels: { app: 'passthrough-1' } }],
    });
    applyComposition();
    listener = await listenTcp(gw, [80, 8080]);
    dropTcpPort(fw, 80);
  }, 120_000);

  afterAll(async () => {
    listener?.kill('SIGKILL');
    await mesh?.teardown();
    for (const s of spire) await s.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('pings through, passes port 8080, and the firewall blocks port 80', async () => {
    const a = mesh.hosts[0]!.agent!;
    const c = a.cliJson(['connect', 'kernel://nse-composition/nsm-1', '--netns', nsc, '--id', 'comp-1']);
    expect(c.srcIps).toEqual(['172.16.1.101/32']);
    expect(c.dstIps).toEqual(['172.16.1.100/32']);
    expect(a.cliJson(['status']).connections.find((x: any) => x.clientId === 'comp-1')).toMatchObject({ state: 'UP', endpoint: 'passthrough-1' });
    expect(ping(nsc, '172.16.1.100')).toBe(true);
    expect(tcpOpens(nsc, '172.16.1.100', 8080)).toBe(true);
    expect(tcpOpens(nsc, '172.16.1.100', 80)).toBe(false);
    expect(dropped(fw)).toBeGreaterThan(0);

    // host-b's agent killed and started again: the chain is served again (its two hops there
    // UP), with the same addresses, and the firewall still filters.
    const b = mesh.hosts[1]!;
    const bDir = b.agent!.dir;
    await b.agent!.stop('SIGKILL', true);
    await mesh.start(1, hostB, { dir: bDir });
    const served = () => {
      const conns = mesh.hosts[1]!.agent!.cliJson(['status']).connections;
      return conns.length === 2 && conns.every((x: any) => x.state === 'UP');
    };
    expect(await until(served, 15_000, 200)).toBe(true);
    expect(ping(nsc, '172.16.1.100')).toBe(true);
    expect(tcpOpens(nsc, '172.16.1.100', 8080)).toBe(true);
    expect(tcpOpens(nsc, '172.16.1.100', 80)).toBe(false);
    expect(a.cliJson(['status']).connections.find((x: any) => x.clientId === 'comp-1')).toMatchObject({ state: 'UP', srcIps: c.srcIps, dstIps: c.dstIps });

    expect(a.cli(['disconnect', 'comp-1']).code).toBe(0);
    for (const ns of [nsc, ptA, fw, gw]) expect(ownLinks(ns), ns).toEqual([]);
    expect(mesh.hosts[1]!.agent!.cliJson(['status']).connections).toEqual([]);
  }, 60_000);

  it('refuses a WireGuard vWire into a passthrough (IP service, client on another host) and leaves nothing', async () => {
    applyComposition();
    const b = mesh.hosts[1]!.agent!;
    const r = b.cli(['connect', 'kernel://nse-composition/nsm-1', '--netns', nscB, '--id', 'comp-wg']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/UNSUPPORTED_MECHANISM/);
    expect(r.stderr).toMatch(/must join bridge nsmbr-\w+ \(a passthrough endpoint\), which a WireGuard vWire cannot/);
    // The client's side may keep WireGuard spares (nsmwg*) waiting in its namespace; no
    // interface of the connection is left anywhere.
    expect(ownLinks(nscB).filter((l) => !l.ifname.startsWith('nsmwg'))).toEqual([]);
    for (const ns of [ptA, fw, gw]) expect(ownLinks(ns).map((l) => l.ifname), ns).toEqual([]);
    expect(b.cliJson(['status']).connections).toEqual([]);
    expect(mesh.hosts[0]!.agent!.cliJson(['status']).connections).toEqual([]);
  }, 60_000);
});
