/**
 * End to end: two domains, each one host (a namespace on one bridge) whose agent runs its
 * domain's registry and hosts an endpoint, and a DNS server (Debian's dnsmasq) on a third host
 * holding the records of both SRV forms. A client in one domain asks for `icmp@<other domain>`
 * (upstream interdomain_Kernel2IP2Kernel): the registry is found by DNS, the endpoint by that
 * registry, and the vWire is made with the other domain's agent. One trust domain for both.
 *
 *   domain-b.test: SRV + A registry.nsm-system.domain-b.test (upstream's form)
 *   domain-a.test: SRV _nsm-registry._tcp.domain-a.test → reg.domain-a.test, A for the target
 *   noaddr.test:   SRV registry.nsm-system.noaddr.test and no address
 *   down.test:     SRV + A pointing to a port nobody listens on
 *
 * Then three hosts of three trust domains with SVID files (identity.source: files): a and b
 * trust each other's bundle (identity.files.federated), a does not trust c's.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { toPem } from '../../src/spire/x509';
import { buildHosts, type Mesh } from '../harness/hosts.mjs';
import { FakeWorkloadApi } from '../helpers/spire/workload-api';
import { hasDnsmasq, nsmSystemRecords, startDnsmasq } from '../harness/dnsmasq.mjs';
import { isRoot, sh, until } from '../harness/exec.mjs';
import { addrs, links, ping } from '../harness/netns.mjs';

const run = isRoot && hasDnsmasq() ? describe : describe.skip;

/** Runs a command that must succeed. */
function must(cmd: string, args: string[], opts: { input?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input: opts.input });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** The nsmgr-proxy port of upstream's deployments. */
const PROXY_PORT = 5004;
/** A second address of a host on its underlay (10.N.0.X -> 10.N.0.X+100). */
const proxyIp = (ip: string): string => ip.replace(/\.(\d+)$/, (_, x) => `.${Number(x) + 100}`);

run('interdomain: icmp@domain across registries found by DNS', () => {
  let mesh: Mesh;
  let dnsmasq: ChildProcess | undefined;
  let nscA: string;
  let nscB: string;
  let nscKeep: string;
  let nseA: string;
  let nseB: string;
  const spire: FakeWorkloadApi[] = [];
  const identity = (i: number) => ({ source: 'spiffe', socket: spire[i]!.address });

  beforeAll(async () => {
    const first = await FakeWorkloadApi.start({ trustDomains: ['example.org'], entries: [{ id: 'spiffe://example.org/host-a', ttlMs: 600_000 }] });
    spire.push(first, await FakeWorkloadApi.start({ sameCasAs: first, entries: [{ id: 'spiffe://example.org/host-b', ttlMs: 600_000 }] }));
    mesh = await buildHosts(3, 'id');
    const [a, b, c] = mesh.hosts;
    nscA = mesh.netns('nsca');
    nscB = mesh.netns('nscb');
    nscKeep = mesh.netns('nsck');
    nseA = mesh.netns('nsea');
    nseB = mesh.netns('nseb');
    dnsmasq = await startDnsmasq(c!.netns, c!.ip, [
      ...nsmSystemRecords('registry', 'domain-b.test', b!.ip, 5002),
      `--srv-host=_nsm-registry._tcp.domain-a.test,reg.domain-a.test,5002`,
      `--host-record=reg.domain-a.test,${a!.ip}`,
      `--srv-host=registry.nsm-system.noaddr.test,x.noaddr.test,5002`,
      // proxied.test: domain-b's registry, and an nsmgr-proxy record for the domain (host-b's
      // agent behind a DNAT of PROXY_PORT on a second address of host-b)
      ...nsmSystemRecords('registry', 'proxied.test', b!.ip, 5002),
      ...nsmSystemRecords('nsmgr-proxy', 'proxied.test', proxyIp(b!.ip), PROXY_PORT),
      ...nsmSystemRecords('registry', 'down.test', c!.ip, 5999),
    ]);
    const common = (i: number) => ({ identity: identity(i), registry: { url: 'embedded' }, interdomain: { dnsServers: [c!.ip], timeout: '2s' }, wireguard: { spares: 0 } });
    await mesh.start(0, {
      ...common(0),
      domain: 'domain-a.test',
      listen: { tcp: `${a!.ip}:5001` },
      endpoints: [{ name: 'icmp-a', services: ['icmp'], cidr: '172.16.1.0/31', netns: nseA }],
    });
    await mesh.start(1, {
      ...common(1),
      domain: 'domain-b.test',
      listen: { tcp: `${b!.ip}:5001` },
      endpoints: [{ name: 'icmp-b', services: ['icmp'], cidr: '172.16.2.0/31', netns: nseB }],
    });
  }, 60_000);

  afterAll(async () => {
    if (dnsmasq && dnsmasq.exitCode === null) dnsmasq.kill('SIGKILL');
    await mesh?.teardown();
    for (const s of spire) await s.close();
  });

  /** Nothing of a refused request is left in the client's namespace or on either agent. */
  const nothingLeft = (nsc: string) => {
    expect(links(nsc).map((l) => l.ifname)).toEqual(['lo']);
    for (const h of mesh.hosts.slice(0, 2)) expect(h.agent!.cliJson(['status']).connections).toEqual([]);
  };

  it('Kernel2IP2Kernel: a client in domain-a reaches icmp@domain-b.test (upstream SRV form), ping both ways', () => {
    const [a, b] = mesh.hosts;
    const c = a!.agent!.cliJson(['connect', 'kernel://icmp@domain-b.test/nsm-1', '--netns', nscA, '--id', 'ab']);
    expect(c.state).toBe('UP');
    // domain-b's endpoint, not domain-a's own icmp
    expect(c.srcIps).toEqual(['172.16.2.1/32']);
    expect(addrs(nscA, 'nsm-1')).toContain('172.16.2.1/32');
    expect(ping(nscA, '172.16.2.0', 3)).toBe(true);
    expect(ping(nseB, '172.16.2.1', 3)).toBe(true);
    // the names as each side knows them: the client's with the domain, domain-b's without
    const onA = a!.agent!.cliJson(['status']).connections.find((x: any) => x.clientId === 'ab');
    expect(onA.service).toBe('icmp@domain-b.test');
    expect(onA.endpoint).toBe('icmp-b@domain-b.test');
    const onB = b!.agent!.cliJson(['status']).connections;
    expect(onB).toHaveLength(1);
    expect(onB[0].service).toBe('icmp');
    expect(a!.agent!.cli(['disconnect', 'ab']).code).toBe(0);
    nothingLeft(nscA);
  }, 30_000);

  it('a domain that publishes nsmgr-proxy.nsm-system: its endpoints are reached through that proxy (upstream registry-proxy-dns)', () => {
    const [a, b] = mesh.hosts;
    const proxy = proxyIp(b!.ip);
    must('ip', ['-n', b!.netns, 'addr', 'add', `${proxy}/24`, 'dev', 'eth0']);
    const nft = (rules: string) => must('ip', ['netns', 'exec', b!.netns, 'nft', '-f', '-'], { input: rules });
    nft(`table ip nsmt-proxy {
  chain pre {
    type nat hook prerouting priority dstnat;
    ip daddr ${proxy} tcp dport ${PROXY_PORT} dnat to ${b!.ip}:5001
  }
}
`);
    try {
      const c = a!.agent!.cliJson(['connect', 'kernel://icmp@proxied.test/nsm-1', '--netns', nscA, '--id', 'viaproxy']);
      expect(c.state).toBe('UP');
      expect(ping(nscA, '172.16.2.0', 3)).toBe(true);
      const onA = a!.agent!.cliJson(['status']).connections.find((x: any) => x.clientId === 'viaproxy');
      expect(onA.endpoint).toBe('icmp-b@proxied.test');
      // the Request went to the proxy's URL, not the one the endpoint registered
      expect(JSON.stringify(onA)).toContain(`tcp://${proxy}:${PROXY_PORT}`);
      expect(a!.agent!.cli(['disconnect', 'viaproxy']).code).toBe(0);
      nothingLeft(nscA);
    } finally {
      sh('ip', ['netns', 'exec', b!.netns, 'nft', 'delete', 'table', 'ip', 'nsmt-proxy']);
      sh('ip', ['-n', b!.netns, 'addr', 'del', `${proxy}/24`, 'dev', 'eth0']);
    }
  }, 30_000);

  it('the other way: a client in domain-b reaches icmp@domain-a.test (_nsm-registry._tcp form)', () => {
    const [, b] = mesh.hosts;
    const c = b!.agent!.cliJson(['connect', 'kernel://icmp@domain-a.test/nsm-2', '--netns', nscB, '--id', 'ba']);
    expect(c.srcIps).toEqual(['172.16.1.1/32']);
    expect(ping(nscB, '172.16.1.0', 3)).toBe(true);
    expect(ping(nseA, '172.16.1.1', 3)).toBe(true);
    expect(b!.agent!.cli(['disconnect', 'ba']).code).toBe(0);
    nothingLeft(nscB);
  }, 30_000);

  it('a domain written as IP:port is that registry, without DNS', () => {
    const [a, b] = mesh.hosts;
    const c = a!.agent!.cliJson(['connect', `kernel://icmp@${b!.ip}:5002/nsm-3`, '--netns', nscA, '--id', 'lit']);
    expect(c.srcIps).toEqual(['172.16.2.1/32']);
    expect(ping(nscA, '172.16.2.0', 2)).toBe(true);
    expect(a!.agent!.cli(['disconnect', 'lit']).code).toBe(0);
    nothingLeft(nscA);
  }, 30_000);

  describe('refusals: a clear error, nothing half-made, the agent keeps serving', () => {
    // A connection that must survive every refusal below.
    beforeAll(() => {
      mesh.hosts[0]!.agent!.cliJson(['connect', 'kernel://icmp@domain-b.test/nsm-9', '--netns', nscKeep, '--id', 'keep']);
    });
    afterAll(() => {
      mesh.hosts[0]!.agent!.cli(['disconnect', 'keep']);
    });

    const refused = (url: string, id: string) => {
      const [a] = mesh.hosts;
      const r = a!.agent!.cli(['connect', url, '--netns', nscA, '--id', id]);
      expect(r.code).not.toBe(0);
      // nothing made in the client's namespace; only the kept connection on the agents
      expect(links(nscA).map((l) => l.ifname)).toEqual(['lo']);
      expect(a!.agent!.cliJson(['status']).connections.map((x: any) => x.clientId)).toEqual(['keep']);
      expect(ping(nscKeep, '172.16.2.0', 2)).toBe(true);
      return r.stderr;
    };

    it('NXDOMAIN: DOMAIN_NOT_FOUND naming both DNS names asked', () => {
      const err = refused('kernel://icmp@nx.test/nsm-1', 'nx');
      expect(err).toContain('DOMAIN_NOT_FOUND');
      expect(err).toContain('SRV registry.nsm-system.nx.test: NXDOMAIN');
      expect(err).toContain('SRV _nsm-registry._tcp.nx.test: NXDOMAIN');
    }, 20_000);

    it('SRV without an address: DOMAIN_NOT_FOUND naming the missing A/AAAA', () => {
      const err = refused('kernel://icmp@noaddr.test/nsm-1', 'noaddr');
      expect(err).toContain('DOMAIN_NOT_FOUND');
      expect(err).toContain('SRV gives port 5002 but A/AAAA registry.nsm-system.noaddr.test');
    }, 20_000);

    it('a registry that is down: UNAVAILABLE naming the registry and the domain', () => {
      const c = mesh.hosts[2]!;
      const err = refused('kernel://icmp@down.test/nsm-1', 'down');
      expect(err).toContain('UNAVAILABLE');
      expect(err).toContain('domain down.test');
      expect(err).toContain(`tcp://${c.ip}:5999`);
    }, 20_000);
  });

  it('domain-b\'s agent (its registry and the endpoint) restarts: the connection from domain-a heals', async () => {
    const [a, b] = mesh.hosts;
    a!.agent!.cliJson(['connect', 'kernel://icmp@domain-b.test/nsm-1', '--netns', nscA, '--id', 'heal']);
    expect(ping(nscA, '172.16.2.0', 2)).toBe(true);
    const dir = b!.agent!.dir;
    await b!.agent!.stop('SIGKILL', true);
    await mesh.start(1, b!.config!, { dir });
    const back = await until(() => ping(nscA, '172.16.2.0', 1) || undefined, 20_000, 200);
    expect(back).toBe(true);
    expect(ping(nseB, '172.16.2.1', 2)).toBe(true);
    const held = () => a!.agent!.cliJson(['status']).connections.find((x: any) => x.clientId === 'heal');
    // the client's heal re-requests through domain-b's registry, found again by DNS
    expect(await until(() => held().state === 'UP', 20_000, 200)).toBe(true);
    expect(held().endpoint).toBe('icmp-b@domain-b.test');
    expect(ping(nscA, '172.16.2.0', 2)).toBe(true);
    expect(a!.agent!.cli(['disconnect', 'heal']).code).toBe(0);
    nothingLeft(nscA);
  }, 60_000);
});

/** SVID files of `id` in its own trust domain, trusting the given other trust domains' bundles. */
function svidFiles(api: FakeWorkloadApi, td: string, host: string, dir: string, federated: string[]) {
  const svid = api.issuer(td).issue(`spiffe://${td}/${host}`, { ttlMs: 600_000 });
  const file = (name: string) => path.join(dir, `${host}-${name}`);
  writeFileSync(file('svid.key'), svid.key.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
  writeFileSync(file('svid.pem'), toPem(svid.chain));
  writeFileSync(file('bundle.pem'), toPem(api.bundle(td)));
  const fed: Record<string, string> = {};
  for (const other of federated) {
    fed[other] = file(`${other}.pem`);
    writeFileSync(fed[other]!, toPem(api.bundle(other)));
  }
  return { source: 'files', files: { cert: file('svid.pem'), key: file('svid.key'), bundle: file('bundle.pem'), federated: fed } };
}

run('interdomain across trust domains federated by bundle files', () => {
  let mesh: Mesh;
  let api: FakeWorkloadApi;
  let dir: string;
  let nsc: string;
  let nseB: string;
  let nseC: string;

  beforeAll(async () => {
    api = await FakeWorkloadApi.start({ trustDomains: ['domain-a.org', 'domain-b.org', 'domain-c.org'] });
    dir = mkdtempSync(path.join(os.tmpdir(), 'nsmt-interdomain-'));
    mesh = await buildHosts(3, 'fd');
    const [a, b, c] = mesh.hosts;
    nsc = mesh.netns('nsc');
    nseB = mesh.netns('nseb');
    nseC = mesh.netns('nsec');
    const common = { registry: { url: 'embedded' }, wireguard: { spares: 0 }, interdomain: { timeout: '2s' } };
    // a and b federate with each other; c trusts a, but a does not trust c
    await mesh.start(1, {
      ...common,
      identity: svidFiles(api, 'domain-b.org', 'host-b', dir, ['domain-a.org']),
      listen: { tcp: `${b!.ip}:5001` },
      endpoints: [{ name: 'icmp-b', services: ['icmp'], cidr: '172.16.2.0/31', netns: nseB }],
    });
    await mesh.start(2, {
      ...common,
      identity: svidFiles(api, 'domain-c.org', 'host-c', dir, ['domain-a.org']),
      listen: { tcp: `${c!.ip}:5001` },
      endpoints: [{ name: 'icmp-c', services: ['icmp'], cidr: '172.16.3.0/31', netns: nseC }],
    });
    await mesh.start(0, { ...common, identity: svidFiles(api, 'domain-a.org', 'host-a', dir, ['domain-b.org']), listen: { tcp: `${a!.ip}:5001` } });
  }, 60_000);

  afterAll(async () => {
    await mesh?.teardown();
    await api?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a client of trust domain domain-a.org reaches icmp in domain-b.org, ping both ways', () => {
    const [a, b] = mesh.hosts;
    const c = a!.agent!.cliJson(['connect', `kernel://icmp@${b!.ip}:5002/nsm-1`, '--netns', nsc, '--id', 'fed']);
    expect(c.srcIps).toEqual(['172.16.2.1/32']);
    expect(ping(nsc, '172.16.2.0', 3)).toBe(true);
    expect(ping(nseB, '172.16.2.1', 3)).toBe(true);
    expect(a!.agent!.cli(['disconnect', 'fed']).code).toBe(0);
    expect(links(nsc).map((l) => l.ifname)).toEqual(['lo']);
  }, 30_000);

  it('a domain whose trust domain is not federated: refused, naming it, nothing made', () => {
    const [a, , c] = mesh.hosts;
    const r = a!.agent!.cli(['connect', `kernel://icmp@${c!.ip}:5002/nsm-1`, '--netns', nsc, '--id', 'unfed']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/server spiffe:\/\/domain-c.org\/host-c of trust domain domain-c.org is not trusted/);
    expect(links(nsc).map((l) => l.ifname)).toEqual(['lo']);
    expect(a!.agent!.cliJson(['status']).connections).toEqual([]);
  }, 30_000);
});
