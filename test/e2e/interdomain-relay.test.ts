/**
 * End to end: a site's nsmgr-proxy (interdomain.relay). Domain B has two hosts: the proxy host
 * b (domain B's registry and the relay) and the endpoint host c, whose agent listens for gRPC
 * only on a private network shared with b; c's tunnel address is on the shared bridge, so the
 * vWire from domain A is direct. DNS (Debian's dnsmasq on d) publishes domain B's registry and
 * nsmgr-proxy records, both at b. A client on a (domain A) asks for icmp@domain-b.test: the
 * Request goes a → b (relay) → c, the vWire a ↔ c.
 *
 *   a 10.N.0.1 ─┐                      ┌─ c 10.N.0.3 (tunnels) ── 192.168.78.2 (gRPC)
 *   b 10.N.0.2 ─┼── bridge ── d (DNS)  │                              │
 *               └──────────────────────┘   b 192.168.78.1 ────────────┘
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { toPem } from '../../src/spire/x509';
import { callFrom } from '../harness/clients.mjs';
import { hasDnsmasq, nsmSystemRecords, startDnsmasq } from '../harness/dnsmasq.mjs';
import { isRoot, sh, sleep, until } from '../harness/exec.mjs';
import { buildHosts, type Mesh } from '../harness/hosts.mjs';
import { links, ping } from '../harness/netns.mjs';
import { FakeWorkloadApi } from '../helpers/spire/workload-api';

const run = isRoot && hasDnsmasq() && sh('test', ['-x', '/usr/sbin/nft']).code === 0 ? describe : describe.skip;

function must(cmd: string, args: string[], input?: string): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
}

const PRIVATE_B = '192.168.78.1';
const PRIVATE_C = '192.168.78.2';

run('interdomain: a site\'s nsmgr-proxy relays Requests to its endpoint hosts', () => {
  let mesh: Mesh;
  let dnsmasq: ChildProcess | undefined;
  let nscA: string;
  let nseC: string;
  let dir: string;
  let raw: { cert: string; key: string; bundle: string };
  const spire: FakeWorkloadApi[] = [];
  const identity = (i: number) => ({ source: 'spiffe', socket: spire[i]!.address });
  // (the agents' logs are read while the test awaits: check them with until)
  const relayLines = () => mesh.hosts[1]!.agent!.logs.join('').split('\n').filter((l) => l.includes('relayed a Request'));

  beforeAll(async () => {
    const first = await FakeWorkloadApi.start({ trustDomains: ['example.org'], entries: [{ id: 'spiffe://example.org/host-a', ttlMs: 600_000 }] });
    spire.push(first);
    for (const h of ['host-b', 'host-c']) spire.push(await FakeWorkloadApi.start({ sameCasAs: first, entries: [{ id: `spiffe://example.org/${h}`, ttlMs: 600_000 }] }));
    // a raw peer's SVID files, for a Request the client agents would not send
    dir = mkdtempSync(path.join(os.tmpdir(), 'nsmt-relay-'));
    const svid = first.issuer('example.org').issue('spiffe://example.org/raw-peer', { ttlMs: 600_000 });
    raw = { cert: path.join(dir, 'svid.pem'), key: path.join(dir, 'svid.key'), bundle: path.join(dir, 'bundle.pem') };
    writeFileSync(raw.key, svid.key.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
    writeFileSync(raw.cert, toPem(svid.chain));
    writeFileSync(raw.bundle, toPem(first.bundle('example.org')));

    mesh = await buildHosts(4, 'rl');
    const [a, b, c, d] = mesh.hosts;
    nscA = mesh.netns('nsca');
    nseC = mesh.netns('nsec');
    // domain B's private network between b and c; c's gRPC address is not reachable from the bridge
    must('ip', ['link', 'add', 'lan0', 'netns', b!.netns, 'type', 'veth', 'peer', 'name', 'lan0', 'netns', c!.netns]);
    must('ip', ['-n', b!.netns, 'addr', 'add', `${PRIVATE_B}/24`, 'dev', 'lan0']);
    must('ip', ['-n', c!.netns, 'addr', 'add', `${PRIVATE_C}/24`, 'dev', 'lan0']);
    must('ip', ['-n', b!.netns, 'link', 'set', 'lan0', 'up']);
    must('ip', ['-n', c!.netns, 'link', 'set', 'lan0', 'up']);
    must('ip', ['-n', c!.netns, 'link', 'set', 'lo', 'up']);
    must('ip', ['netns', 'exec', c!.netns, 'nft', '-f', '-'], `table inet nsmt-relay {
  chain in {
    type filter hook input priority 0;
    iifname "eth0" ip daddr ${PRIVATE_C} drop
  }
}
`);
    dnsmasq = await startDnsmasq(d!.netns, d!.ip, [
      ...nsmSystemRecords('registry', 'domain-b.test', b!.ip, 5002),
      ...nsmSystemRecords('nsmgr-proxy', 'domain-b.test', b!.ip, 5001),
    ]);
    const common = { interdomain: { dnsServers: [d!.ip], timeout: '2s' }, wireguard: { spares: 0 } };
    await mesh.start(1, {
      ...common,
      identity: identity(1),
      domain: 'domain-b.test',
      interdomain: { ...common.interdomain, relay: true },
      registry: { url: 'embedded', expiration: '6s' },
      listen: { tcp: `${b!.ip}:5001` },
    });
    await mesh.start(2, {
      ...common,
      identity: identity(2),
      domain: 'domain-b.test',
      registry: { url: `tcp://${b!.ip}:5002` },
      listen: { tcp: `${PRIVATE_C}:5001` },
      endpoints: [{ name: 'icmp-c', services: ['icmp'], cidr: '172.16.7.0/31', netns: nseC }],
    });
    // short tokens: the client refreshes its connection every few seconds (long enough that
    // the endpoint's agent keeps it while the proxy restarts)
    await mesh.start(0, { ...common, identity: identity(0), domain: 'domain-a.test', registry: { url: 'embedded' }, listen: { tcp: `${a!.ip}:5001` }, maxTokenLifetime: '20s' });
  }, 90_000);

  afterAll(async () => {
    if (dnsmasq && dnsmasq.exitCode === null) dnsmasq.kill('SIGKILL');
    await mesh?.teardown();
    for (const s of spire) await s.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('c\'s gRPC address is not reachable from domain A, its tunnel address is', () => {
    const [a, , c] = mesh.hosts;
    expect(ping(a!.netns, PRIVATE_C, 1)).toBe(false);
    expect(ping(a!.netns, c!.ip, 1)).toBe(true);
  });

  it('a client in domain A reaches icmp@domain-b.test through the proxy: ping both ways, the vWire direct to c', async () => {
    const [a, b, c] = mesh.hosts;
    const conn = a!.agent!.cliJson(['connect', 'kernel://icmp@domain-b.test/nsm-1', '--netns', nscA, '--id', 'relayed']);
    expect(conn.state).toBe('UP');
    expect(ping(nscA, '172.16.7.0', 3)).toBe(true);
    expect(ping(nseC, '172.16.7.1', 3)).toBe(true);
    const onA = a!.agent!.cliJson(['status']).connections.find((x: any) => x.clientId === 'relayed');
    expect(onA.service).toBe('icmp@domain-b.test');
    expect(onA.endpoint).toBe('icmp-c@domain-b.test');
    // the Request went to the proxy; the tunnel goes to c's own tunnel address
    expect(JSON.stringify(onA)).toContain(`tcp://${b!.ip}:5001`);
    expect(onA.tunnel.parameters.dst_ip).toBe(c!.ip);
    // the proxy relayed it, and holds no vWire of it
    expect(await until(() => relayLines().some((l) => l.includes(`tcp://${PRIVATE_C}:5001`)) || undefined, 5_000, 100)).toBe(true);
    expect(b!.agent!.cliJson(['status']).connections).toEqual([]);
    // c serves it under domain B's own names
    const onC = c!.agent!.cliJson(['status']).connections;
    expect(onC).toHaveLength(1);
    expect(onC[0].service).toBe('icmp');
  }, 30_000);

  it('the client\'s refreshes go through the proxy too', async () => {
    const first = relayLines().length;
    expect(await until(() => relayLines().length >= first + 1 || undefined, 20_000, 250)).toBe(true);
    const a = mesh.hosts[0]!;
    expect(a.agent!.cliJson(['status']).connections.find((x: any) => x.clientId === 'relayed').state).toBe('UP');
    expect(ping(nscA, '172.16.7.0', 2)).toBe(true);
  }, 30_000);

  it('a Request for an endpoint the site does not have: NOT_FOUND naming the proxy and the endpoint', () => {
    const [a, b] = mesh.hosts;
    const r = callFrom(a!.netns, `${b!.ip}:5001`, 'Request', {
      connection: {
        id: 'raw-1',
        network_service: 'icmp@domain-b.test',
        network_service_endpoint_name: 'ghost@domain-b.test',
        path: { index: 0, path_segments: [{ name: 'raw-peer', id: 'raw-1' }] },
      },
      mechanism_preferences: [{ cls: 'REMOTE', type: 'WIREGUARD', parameters: {} }],
    }, { identity: raw });
    expect(r.code).toBe(5);
    expect(r.details).toContain('nsmgr-proxy host-b of domain-b.test: endpoint ghost is not found in the registry of domain-b.test');
  }, 20_000);

  it('a Request for another domain\'s endpoint: FOREIGN_DOMAIN naming the proxy', () => {
    const [a, b] = mesh.hosts;
    const r = callFrom(a!.netns, `${b!.ip}:5001`, 'Request', {
      connection: {
        id: 'raw-2',
        network_service: 'icmp@domain-c.test',
        network_service_endpoint_name: 'icmp-x@domain-c.test',
        path: { index: 0, path_segments: [{ name: 'raw-peer', id: 'raw-2' }] },
      },
      mechanism_preferences: [{ cls: 'REMOTE', type: 'WIREGUARD', parameters: {} }],
    }, { identity: raw });
    expect(r.code).toBe(7);
    expect(r.details).toContain('nsmgr-proxy host-b of domain-b.test: endpoint icmp-x@domain-c.test is of domain domain-c.test');
  }, 20_000);

  it('the proxy is killed: the vWire keeps passing packets; restarted, the connection is Requested through it again', async () => {
    const [a, b] = mesh.hosts;
    const dir = b!.agent!.dir;
    await b!.agent!.stop('SIGKILL', true);
    for (let i = 0; i < 3; i++) {
      expect(ping(nscA, '172.16.7.0', 1)).toBe(true);
      await sleep(1_000);
    }
    expect(ping(nseC, '172.16.7.1', 2)).toBe(true);
    await mesh.start(1, b!.config!, { dir });
    // the client's heal (its monitor stream to the proxy broke) re-requests through the proxy,
    // once c's endpoint is registered again in the restarted registry
    expect(await until(() => relayLines().length > 0 || undefined, 30_000, 250)).toBe(true);
    const held = () => a!.agent!.cliJson(['status']).connections.find((x: any) => x.clientId === 'relayed');
    expect(await until(() => held().state === 'UP' || undefined, 20_000, 250)).toBe(true);
    expect(ping(nscA, '172.16.7.0', 2)).toBe(true);
    expect(ping(nseC, '172.16.7.1', 2)).toBe(true);
  }, 90_000);

  it('the endpoint host restarts: the proxy\'s monitor reports it down, the client heals through the proxy', async () => {
    const [a, b, c] = mesh.hosts;
    const before = relayLines().length;
    const dir = c!.agent!.dir;
    await c!.agent!.stop('SIGKILL', true);
    expect(await until(() => b!.agent!.logs.join('').includes('relay: the inner agent reports the connection down') || undefined, 10_000, 100)).toBe(true);
    await mesh.start(2, c!.config!, { dir });
    expect(await until(() => relayLines().length > before || undefined, 30_000, 250)).toBe(true);
    const held = () => a!.agent!.cliJson(['status']).connections.find((x: any) => x.clientId === 'relayed');
    expect(await until(() => held().state === 'UP' || undefined, 20_000, 250)).toBe(true);
    expect(ping(nscA, '172.16.7.0', 2)).toBe(true);
    expect(ping(nseC, '172.16.7.1', 2)).toBe(true);
  }, 90_000);

  it('Close goes through the proxy: nothing left on either side', async () => {
    const [a, , c] = mesh.hosts;
    expect(a!.agent!.cli(['disconnect', 'relayed']).code).toBe(0);
    expect(links(nscA).map((l) => l.ifname)).toEqual(['lo']);
    expect(await until(() => c!.agent!.cliJson(['status']).connections.length === 0 || undefined, 5_000, 100)).toBe(true);
    expect(await until(() => mesh.hosts[1]!.agent!.logs.join('').includes('relayed a Close') || undefined, 5_000, 100)).toBe(true);
  }, 20_000);

  it('the endpoint host is down: UNAVAILABLE naming the proxy, the endpoint and its URL', async () => {
    const [a, , c] = mesh.hosts;
    await c!.agent!.stop('SIGKILL', true);
    const r = a!.agent!.cli(['connect', 'kernel://icmp@domain-b.test/nsm-2', '--netns', nscA, '--id', 'down']);
    expect(r.code).not.toBe(0);
    expect(r.stderr, r.stderr).toContain('UNAVAILABLE');
    expect(r.stderr).toContain('nsmgr-proxy host-b of domain-b.test: relaying to endpoint icmp-c');
    expect(r.stderr).toContain(`tcp://${PRIVATE_C}:5001`);
    expect(links(nscA).map((l) => l.ifname)).toEqual(['lo']);
  }, 30_000);
});
