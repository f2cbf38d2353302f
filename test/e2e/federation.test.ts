/**
 * End to end: three domains, each one host with its own trust domain made with
 * `nsm-agent identity` (identity.source: files, no federated bundle files), its own registry,
 * and a SPIFFE bundle endpoint serving its trust domain's bundle (identity.bundleEndpoint).
 * Trust comes from the bundle endpoints (identity.federation, profile https_spiffe), the
 * operator giving only the bootstrap bundle that authenticates each endpoint:
 *
 *   domain-a.test (trust domain domain-a.org) <-> domain-b.test (domain-b.org)
 *   domain-c.test (domain-c.org) trusts domain-a.org; domain-a.org does not trust domain-c.org
 *
 * DNS (Debian's dnsmasq, on host c) holds the registries' SRV records. Then domain-b.org
 * rotates its CA: the new authority is published through the endpoint first, then host b's
 * SVID is re-issued by it; domain-a picks the new bundle up while running, its existing
 * connection carries on, and new connections verify against the fetched bundle.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cli } from '../harness/agent.mjs';
import { hasDnsmasq, nsmSystemRecords, startDnsmasq } from '../harness/dnsmasq.mjs';
import { isRoot, until } from '../harness/exec.mjs';
import { buildHosts, type Mesh } from '../harness/hosts.mjs';
import { links, ping } from '../harness/netns.mjs';

const run = isRoot && hasDnsmasq() ? describe : describe.skip;

/** Runs `nsm-agent identity ...`; throws with its stderr if it fails. */
function identity(...args: string[]): void {
  const r = cli(undefined, ['identity', ...args]);
  if (r.code !== 0) throw new Error(`nsm-agent identity ${args.join(' ')}: ${r.stderr}`);
}

/** Replaces a file by rename, as certificate tools do (the agent never reads it half written). */
function replaceFile(file: string, data: string | Buffer, mode = 0o644): void {
  writeFileSync(`${file}.tmp`, data, { mode });
  renameSync(`${file}.tmp`, file);
}

run('interdomain across trust domains federated by SPIFFE bundle endpoints', () => {
  let mesh: Mesh;
  let dnsmasq: ChildProcess | undefined;
  let dir: string;
  let nscA: string;
  let nscB: string;
  let nscKeep: string;
  let nseA: string;
  let nseB: string;
  let nseC: string;
  const caDir = (td: string) => path.join(dir, `ca-${td}`);
  const idDir = (host: string) => path.join(dir, host);
  const bundleUrl = (ip: string) => `https://${ip}:8443/bundle`;

  /** The SVID files of `host` in trust domain `td`, issued by the CA in `ca`. */
  function issue(td: string, host: string, ca = caDir(td), ttl = '24h') {
    identity('issue', '--ca-dir', ca, '--id', `spiffe://${td}/${host}`, '--out', idDir(host), '--ttl', ttl);
    const f = (n: string) => path.join(idDir(host), n);
    return { cert: f('svid.pem'), key: f('svid.key'), bundle: f('bundle.pem') };
  }

  /** identity for `host` of `td`, federating with the given [trust domain, endpoint host IP, endpoint host]s. */
  function identityConfig(td: string, host: string, ip: string, federation: [string, string, string][]) {
    return {
      source: 'files',
      files: issue(td, host),
      federation: federation.map(([otherTd, otherIp, otherHost]) => ({
        trustDomain: otherTd,
        bundleEndpoint: bundleUrl(otherIp),
        endpointId: `spiffe://${otherTd}/${otherHost}`,
        // bootstrap: authenticates the endpoint's first answer only
        bundle: path.join(caDir(otherTd), 'ca.pem'),
        minRefresh: '1s',
      })),
      bundleEndpoint: { listen: `${ip}:8443`, refreshHint: '1s' },
    };
  }

  const federationOf = (i: number, td: string) => mesh.hosts[i]!.agent!.cliJson(['status']).federation.find((f: any) => f.trustDomain === td);

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'nsmt-federation-'));
    for (const td of ['domain-a.org', 'domain-b.org', 'domain-c.org']) identity('create-ca', '--trust-domain', td, '--dir', caDir(td));
    mesh = await buildHosts(3, 'fe');
    const [a, b, c] = mesh.hosts;
    nscA = mesh.netns('nsca');
    nscB = mesh.netns('nscb');
    nscKeep = mesh.netns('nsck');
    nseA = mesh.netns('nsea');
    nseB = mesh.netns('nseb');
    nseC = mesh.netns('nsec');
    dnsmasq = await startDnsmasq(c!.netns, c!.ip, [
      ...nsmSystemRecords('registry', 'domain-a.test', a!.ip, 5002),
      ...nsmSystemRecords('registry', 'domain-b.test', b!.ip, 5002),
      ...nsmSystemRecords('registry', 'domain-c.test', c!.ip, 5002),
    ]);
    const common = { registry: { url: 'embedded' }, interdomain: { dnsServers: [c!.ip], timeout: '2s' }, wireguard: { spares: 0 } };
    await mesh.start(0, {
      ...common,
      domain: 'domain-a.test',
      identity: identityConfig('domain-a.org', 'host-a', a!.ip, [['domain-b.org', b!.ip, 'host-b']]),
      listen: { tcp: `${a!.ip}:5001` },
      endpoints: [{ name: 'icmp-a', services: ['icmp'], cidr: '172.16.1.0/31', netns: nseA }],
    });
    await mesh.start(1, {
      ...common,
      domain: 'domain-b.test',
      identity: identityConfig('domain-b.org', 'host-b', b!.ip, [['domain-a.org', a!.ip, 'host-a']]),
      listen: { tcp: `${b!.ip}:5001` },
      // two address pairs: a connection kept across the rotation and a new one
      endpoints: [{ name: 'icmp-b', services: ['icmp'], cidr: '172.16.2.0/30', netns: nseB }],
    });
    await mesh.start(2, {
      ...common,
      domain: 'domain-c.test',
      identity: identityConfig('domain-c.org', 'host-c', c!.ip, [['domain-a.org', a!.ip, 'host-a']]),
      listen: { tcp: `${c!.ip}:5001` },
      endpoints: [{ name: 'icmp-c', services: ['icmp'], cidr: '172.16.3.0/31', netns: nseC }],
    });
    // host a started before b's endpoint was up: its fetch is retried until it succeeds
    for (const [i, td] of [[0, 'domain-b.org'], [1, 'domain-a.org'], [2, 'domain-a.org']] as const) {
      expect(await until(() => federationOf(i, td)?.state === 'ok', 20_000, 200), `host ${i} fetches ${td}`).toBe(true);
    }
  }, 90_000);

  afterAll(async () => {
    if (dnsmasq && dnsmasq.exitCode === null) dnsmasq.kill('SIGKILL');
    await mesh?.teardown();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const nothingLeft = (nsc: string, ...keep: string[]) => {
    expect(links(nsc).map((l) => l.ifname)).toEqual(['lo']);
    expect(mesh.hosts[0]!.agent!.cliJson(['status']).connections.map((x: any) => x.clientId)).toEqual(keep);
  };

  it('status shows each bundle endpoint, the bundle fetched and no federated files', () => {
    const f = federationOf(0, 'domain-b.org');
    expect(f).toMatchObject({ url: bundleUrl(mesh.hosts[1]!.ip), endpointId: 'spiffe://domain-b.org/host-b', state: 'ok', authorities: 1, errorCode: '' });
    expect(f.sequence).toBeGreaterThan(0);
    expect(mesh.hosts[0]!.config!.identity).not.toHaveProperty('files.federated');
    expect(mesh.hosts[0]!.agent!.cli(['status']).stdout).toMatch(/federated: domain-b.org from https:\/\/\S+, ok, 1 authority/);
  });

  it('Kernel2IP2Kernel: a client in domain-a (domain-a.org) reaches icmp@domain-b.test (domain-b.org), ping both ways', () => {
    const [a] = mesh.hosts;
    const c = a!.agent!.cliJson(['connect', 'kernel://icmp@domain-b.test/nsm-1', '--netns', nscA, '--id', 'ab']);
    expect(c.state).toBe('UP');
    expect(c.srcIps).toEqual(['172.16.2.1/32']);
    expect(ping(nscA, '172.16.2.0', 3)).toBe(true);
    expect(ping(nseB, '172.16.2.1', 3)).toBe(true);
    expect(a!.agent!.cli(['disconnect', 'ab']).code).toBe(0);
    nothingLeft(nscA);
  }, 30_000);

  it('the other way: a client in domain-b reaches icmp@domain-a.test', () => {
    const [, b] = mesh.hosts;
    const c = b!.agent!.cliJson(['connect', 'kernel://icmp@domain-a.test/nsm-2', '--netns', nscB, '--id', 'ba']);
    expect(c.srcIps).toEqual(['172.16.1.1/32']);
    expect(ping(nscB, '172.16.1.0', 3)).toBe(true);
    expect(ping(nseA, '172.16.1.1', 3)).toBe(true);
    expect(b!.agent!.cli(['disconnect', 'ba']).code).toBe(0);
    expect(links(nscB).map((l) => l.ifname)).toEqual(['lo']);
  }, 30_000);

  it('a domain whose trust domain is not federated: refused, naming it, nothing made', () => {
    const [a] = mesh.hosts;
    const r = a!.agent!.cli(['connect', 'kernel://icmp@domain-c.test/nsm-1', '--netns', nscA, '--id', 'unfed']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/spiffe:\/\/domain-c.org\/host-c of trust domain domain-c.org is not trusted/);
    nothingLeft(nscA);
  }, 30_000);

  it('domain-b.org rotates its CA through the bundle endpoint: applied while running, connections carry on', async () => {
    const [a, b] = mesh.hosts;
    a!.agent!.cliJson(['connect', 'kernel://icmp@domain-b.test/nsm-9', '--netns', nscKeep, '--id', 'keep']);
    expect(ping(nscKeep, '172.16.2.0', 2)).toBe(true);
    const seq = federationOf(0, 'domain-b.org').sequence;

    // 1. the new authority is published beside the old one (host b's bundle file)
    const newCa = path.join(dir, 'ca-domain-b.org-2');
    identity('create-ca', '--trust-domain', 'domain-b.org', '--dir', newCa);
    const bFiles = (b!.config!.identity as any).files;
    replaceFile(bFiles.bundle, readFileSync(path.join(caDir('domain-b.org'), 'ca.pem'), 'utf8') + readFileSync(path.join(newCa, 'ca.pem'), 'utf8'));
    expect(await until(() => federationOf(0, 'domain-b.org')?.authorities === 2, 20_000, 200)).toBe(true);
    expect(federationOf(0, 'domain-b.org').sequence).toBeGreaterThan(seq);

    // 2. host b's SVID is re-issued by the new CA (a bootstrap file of the old CA alone could not verify it)
    const expires = () => b!.agent!.cliJson(['status']).svid.expires;
    const before = expires();
    const fresh = path.join(dir, 'host-b-2');
    identity('issue', '--ca-dir', newCa, '--id', 'spiffe://domain-b.org/host-b', '--out', fresh, '--ttl', '12h');
    replaceFile(bFiles.key, readFileSync(path.join(fresh, 'svid.key')), 0o600);
    replaceFile(bFiles.cert, readFileSync(path.join(fresh, 'svid.pem')));
    expect(await until(() => expires() !== before, 20_000, 200)).toBe(true);

    // the kept connection carries on; a new one verifies host b's new SVID against the fetched bundle
    expect(ping(nscKeep, '172.16.2.0', 3)).toBe(true);
    const c = a!.agent!.cliJson(['connect', 'kernel://icmp@domain-b.test/nsm-1', '--netns', nscA, '--id', 'rotated']);
    expect(c.state).toBe('UP');
    const endpointIp = String(c.dstIps[0]).split('/')[0]!;
    expect(endpointIp).toMatch(/^172\.16\.2\./);
    expect(ping(nscA, endpointIp, 3)).toBe(true);
    // the endpoint itself is now authenticated with the fetched bundle's new authority
    expect(await until(() => federationOf(0, 'domain-b.org')?.state === 'ok', 10_000, 200)).toBe(true);
    expect(a!.agent!.cli(['disconnect', 'rotated']).code).toBe(0);
    expect(a!.agent!.cli(['disconnect', 'keep']).code).toBe(0);
    nothingLeft(nscA);
  }, 90_000);
});
