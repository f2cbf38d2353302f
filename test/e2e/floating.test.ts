/**
 * End to end: the floating registry (upstream floating_Kernel2IP2Kernel). Three domains, each
 * one host (a namespace on one bridge) with its own agent and registry, and a DNS server
 * (Debian's dnsmasq) on the floating domain's host:
 *
 *   domain-a.test  host a: the client
 *   domain-b.test  host b: hosts nse-b@floating.test serving svc@floating.test
 *   floating.test  host c: its agent's registry is the floating registry
 *                  (SRV + A registry.nsm-system.floating.test)
 *   down.test      SRV + A pointing to a port nobody listens on
 *
 * B's endpoint registers into C's registry (names stripped there), a client in A asks for
 * svc@floating.test, C's registry answers with B's endpoint and URL, and the vWire is made
 * between A and B. One trust domain for all three.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { writeAgentConfig } from '../harness/agent.mjs';
import { hasDnsmasq, nsmSystemRecords, startDnsmasq } from '../harness/dnsmasq.mjs';
import { isRoot, until } from '../harness/exec.mjs';
import { buildHosts, type Mesh } from '../harness/hosts.mjs';
import { links, ping } from '../harness/netns.mjs';
import { FakeWorkloadApi } from '../helpers/spire/workload-api';

const run = isRoot && hasDnsmasq() ? describe : describe.skip;

run('floating registry: svc@floating.test registered by domain-b into floating.test', () => {
  let mesh: Mesh;
  let dnsmasq: ChildProcess | undefined;
  let nsc: string;
  let nse: string;
  let nsx: string;
  const spire: FakeWorkloadApi[] = [];

  beforeAll(async () => {
    const first = await FakeWorkloadApi.start({ trustDomains: ['example.org'], entries: [{ id: 'spiffe://example.org/host-a', ttlMs: 600_000 }] });
    spire.push(first);
    for (const h of ['host-b', 'host-c']) spire.push(await FakeWorkloadApi.start({ sameCasAs: first, entries: [{ id: `spiffe://example.org/${h}`, ttlMs: 600_000 }] }));
    mesh = await buildHosts(3, 'fl');
    const [a, b, c] = mesh.hosts;
    nsc = mesh.netns('nsc');
    nse = mesh.netns('nse');
    nsx = mesh.netns('nsx');
    dnsmasq = await startDnsmasq(c!.netns, c!.ip, [
      ...nsmSystemRecords('registry', 'floating.test', c!.ip, 5002),
      ...nsmSystemRecords('registry', 'down.test', c!.ip, 5999),
    ]);
    const common = (i: number, host: { ip: string }) => ({
      identity: { source: 'spiffe', socket: spire[i]!.address },
      registry: { url: 'embedded' },
      interdomain: { dnsServers: [c!.ip], timeout: '2s' },
      wireguard: { spares: 0 },
      listen: { tcp: `${host.ip}:5001` },
    });
    await mesh.start(2, { ...common(2, c!), domain: 'floating.test' });
    await mesh.start(1, {
      ...common(1, b!),
      domain: 'domain-b.test',
      endpoints: [{ name: 'nse-b@floating.test', services: ['svc@floating.test'], cidr: '172.16.1.2/31', netns: nse }],
    });
    await mesh.start(0, { ...common(0, a!), domain: 'domain-a.test' });
  }, 60_000);

  afterAll(async () => {
    if (dnsmasq && dnsmasq.exitCode === null) dnsmasq.kill('SIGKILL');
    await mesh?.teardown();
    for (const s of spire) await s.close();
  });

  const floatingEntries = () => mesh.hosts[2]!.agent!.cliJson(['endpoints']) as any[];

  it('the floating registry holds the endpoint under its stripped names, with domain-b\'s URL', () => {
    const [, b] = mesh.hosts;
    const entry = floatingEntries().find((e: any) => e.name === 'nse-b');
    expect(entry).toBeDefined();
    expect(JSON.stringify(entry)).toContain(`tcp://${b!.ip}:5001`);
    expect(JSON.stringify(entry)).toContain('svc');
    expect(JSON.stringify(entry)).not.toContain('@floating.test');
    // domain-b's own registry does not have it
    expect((b!.agent!.cliJson(['endpoints']) as any[]).map((e: any) => e.name)).toEqual([]);
  });

  it('floating_Kernel2IP2Kernel: a client in domain-a reaches svc@floating.test served by domain-b, ping both ways', () => {
    const [a, b] = mesh.hosts;
    const c = a!.agent!.cliJson(['connect', 'kernel://svc@floating.test/nsm-1', '--netns', nsc, '--id', 'fl']);
    expect(c.state).toBe('UP');
    expect(c.srcIps).toEqual(['172.16.1.3/32']);
    expect(ping(nsc, '172.16.1.2', 3)).toBe(true);
    expect(ping(nse, '172.16.1.3', 3)).toBe(true);
    const onA = a!.agent!.cliJson(['status']).connections.find((x: any) => x.clientId === 'fl');
    expect(onA.service).toBe('svc@floating.test');
    expect(onA.endpoint).toBe('nse-b@floating.test');
    const onB = b!.agent!.cliJson(['status']).connections;
    expect(onB).toHaveLength(1);
    expect(onB[0].service).toBe('svc@floating.test');
  }, 30_000);

  it('a floating domain DNS does not know: the endpoint is refused naming the DNS names, nothing registered', () => {
    const [, b] = mesh.hosts;
    const endpoints = [...(b!.config!.endpoints as object[]), { name: 'nse-x@nx.test', services: ['svc@nx.test'], cidr: '172.16.9.0/31', netns: nsx }];
    writeAgentConfig(b!.agent!.dir, { name: b!.name, ...b!.config, endpoints });
    const r = b!.agent!.cli(['reload', '--json']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('DOMAIN_NOT_FOUND');
    expect(r.stdout).toContain('SRV registry.nsm-system.nx.test: NXDOMAIN');
    expect(b!.agent!.cliJson(['status']).endpoints.map((e: any) => e.name)).toEqual(['nse-b@floating.test']);
    writeAgentConfig(b!.agent!.dir, { name: b!.name, ...b!.config });
  }, 20_000);

  it('a floating registry that is down: new requests refused naming it, the vWire stays; back, it has the endpoint again', async () => {
    const [a, , c] = mesh.hosts;
    const dir = c!.agent!.dir;
    await c!.agent!.stop('SIGKILL', true);
    const r = a!.agent!.cli(['connect', 'kernel://svc@floating.test/nsm-2', '--netns', nsc, '--id', 'fl2']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('UNAVAILABLE');
    expect(r.stderr).toContain('domain floating.test');
    expect(r.stderr).toContain(`tcp://${c!.ip}:5002`);
    expect(links(nsc).map((l) => l.ifname).sort()).toEqual(['lo', 'nsm-1']);
    expect(ping(nsc, '172.16.1.2', 2)).toBe(true);
    await mesh.start(2, c!.config!, { dir });
    // domain-b's agent registers its endpoint again (heal of the floating registration)
    expect(await until(() => floatingEntries().some((e: any) => e.name === 'nse-b') || undefined, 20_000, 200)).toBe(true);
    expect(a!.agent!.cli(['disconnect', 'fl']).code).toBe(0);
    const again = a!.agent!.cliJson(['connect', 'kernel://svc@floating.test/nsm-2', '--netns', nsc, '--id', 'fl3']);
    expect(again.state).toBe('UP');
    expect(ping(nsc, '172.16.1.2', 2)).toBe(true);
    expect(a!.agent!.cli(['disconnect', 'fl3']).code).toBe(0);
    expect(links(nsc).map((l) => l.ifname)).toEqual(['lo']);
  }, 60_000);
});
