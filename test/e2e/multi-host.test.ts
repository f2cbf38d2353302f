/**
 * End to end: three hosts (namespaces on one bridge, each running its own agent).
 * host-c runs the registry, host-b hosts the endpoints, host-a connects clients to them:
 * Kernel2IP2Kernel over WireGuard and Kernel2Ethernet2Kernel over VXLAN, negotiated between
 * the two agents with the NSM protocol.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { buildHosts, type Mesh } from '../harness/hosts.mjs';
import { callFrom } from '../harness/clients.mjs';
import { grpcNseRegistry, grpcNsRegistry, newRegistryClients } from '../../src/registry/client';
import { Ctx } from '../../src/core/ctx';
import { FakeWorkloadApi } from '../helpers/spire/workload-api';
import { toPem } from '../../src/spire/x509';
import { LocalCa } from '../../src/spire/ca';
import { SpiffeTokenSource } from '../../src/spire/token';
import type { X509Svid } from '../../src/spire/svid';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { sh, isRoot, until } from '../harness/exec.mjs';
import { addrs, ipCounter, links, ping } from '../harness/netns.mjs';

const run = isRoot ? describe : describe.skip;

/** SVID files for identity.source: files, issued by the double's CA. */
function issueFiles(api: FakeWorkloadApi, id: string, dir: string, ca = api.issuer('example.org'), tag = 'raw'): { cert: string; key: string; bundle: string; svid: X509Svid } {
  const svid = ca.issue(id, { ttlMs: 600_000 });
  const files = { cert: path.join(dir, `${tag}.pem`), key: path.join(dir, `${tag}.key`), bundle: path.join(dir, `${tag}-bundle.pem`) };
  writeFileSync(files.key, svid.key.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
  writeFileSync(files.cert, toPem(svid.chain));
  // The mesh's roots, plus the issuing CA when it is not the mesh's (an impostor that trusts
  // the mesh, so that the refusal seen is the agent's).
  writeFileSync(files.bundle, toPem([...api.bundle('example.org'), ...ca.bundle()]));
  return { ...files, svid };
}

/** A UDP port holder in a namespace (python3, no SO_REUSEADDR); returns its kill function. */
async function holdUdpPorts(netns: string, ports: number[]): Promise<() => void> {
  const code = `import socket,sys,time\nss=[]\nfor p in ${JSON.stringify(ports)}:\n  s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('0.0.0.0',p)); ss.append(s)\nprint('ok',flush=True)\ntime.sleep(120)`;
  const p = spawn('ip', ['netns', 'exec', netns, 'python3', '-c', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    p.stdout!.once('data', () => resolve());
    p.once('exit', (c) => reject(new Error(`port holder exited ${c}`)));
  });
  return () => p.kill('SIGKILL');
}

/** The WireGuard device of a requesting side's connection, as status names it. */
const dev0 = (c: any): string => c.tunnel.device.device;

/** wireguard-go processes of this test's agents (other runs on the machine are not counted). */
let agentPids: () => number[] = () => [];
function wgProcs(): number[] {
  const pids = agentPids();
  if (!pids.length) return [];
  const r = sh('pgrep', ['-x', 'wireguard-go', '-P', pids.join(',')]);
  return r.stdout.split('\n').filter(Boolean).map(Number);
}

run('multi-host vWires (three agents)', () => {
  let mesh: Mesh;
  let nsc: string;
  let nse: string;
  let nseEth: string;
  const registryURL = () => `tcp://${mesh.hosts[2]!.ip}:5002`;
  // One SPIRE agent double per host under one SPIRE server (shared CA): mTLS and signed tokens
  // on every hop, with SVIDs rotated at half-life while the tests run.
  // The doubles serve from this process, and several tests block it in synchronous calls
  // (callFrom, cli): the lifetime leaves room for a rotation pushed late on a loaded host.
  const SVID_TTL_MS = 40_000;
  const spire: FakeWorkloadApi[] = [];
  const identity = (i: number) => ({ source: 'spiffe', socket: spire[i]!.address });

  beforeAll(async () => {
    const first = await FakeWorkloadApi.start({ trustDomains: ['example.org'], entries: [{ id: 'spiffe://example.org/host-a', ttlMs: SVID_TTL_MS }] });
    spire.push(first);
    for (const h of ['host-b', 'host-c']) {
      spire.push(await FakeWorkloadApi.start({ sameCasAs: first, entries: [{ id: `spiffe://example.org/${h}`, ttlMs: SVID_TTL_MS }] }));
    }
    mesh = await buildHosts(3, 'mh');
    agentPids = () => mesh.hosts.map((h) => h.agent?.proc.pid).filter((p): p is number => !!p);
    nsc = mesh.netns('nsc');
    nse = mesh.netns('nse');
    nseEth = mesh.netns('nsx');
    const [a, b, c] = mesh.hosts;
    await mesh.start(2, { identity: identity(2), listen: { tcp: `${c!.ip}:5001` }, registry: { url: 'embedded' } });
    await mesh.start(1, {
      identity: identity(1),
      listen: { tcp: `${b!.ip}:5001` },
      registry: { url: registryURL() },
      // No spare devices here: the checks below count wireguard-go processes exactly.
      wireguard: { ports: '51820-51821', spares: 0 },
      endpoints: [
        { name: 'icmp-responder-b', services: ['icmp-responder'], cidr: '172.16.1.100/31', netns: nse, labels: { app: 'icmp' } },
        { name: 'l2-responder-b', services: ['l2-responder'], cidr: '172.16.2.100/31', netns: nseEth, payload: 'ETHERNET' },
        { name: 'guarded-b', services: ['guarded'], cidr: '172.16.3.100/31', netns: nse },
      ],
      policy: [{ service: 'guarded', allow: ['spiffe://example.org/host-a'] }],
    });
    await mesh.start(0, { identity: identity(0), listen: { tcp: `${a!.ip}:5001` }, registry: { url: registryURL() }, wireguard: { spares: 0 } });
  }, 60_000);

  afterAll(async () => {
    await mesh?.teardown();
    for (const s of spire) await s.close();
  });

  it('Kernel2IP2Kernel: WireGuard between host-a and host-b, ping both ways, iperf3, wg show, matching parameters', async () => {
    const [a, b] = mesh.hosts;
    const before = wgProcs();
    const c = a!.agent!.cliJson(['connect', 'kernel://icmp-responder/nsm-1', '--netns', nsc, '--id', 'wg-1']);
    expect(c.srcIps).toEqual(['172.16.1.101/32']);
    expect(addrs(nsc, 'nsm-1')).toContain('172.16.1.101/32');
    const epIf = links(nse).find((l) => l.ifname !== 'lo')!;
    expect(addrs(nse, epIf.ifname)).toContain('172.16.1.100/32');
    expect(ping(nsc, '172.16.1.100', 3)).toBe(true);
    expect(ping(nse, '172.16.1.101', 3)).toBe(true);
    expect(wgProcs().length - before.length).toBe(2);
    // each agent took its WireGuard ports out of its namespace's ephemeral range at start
    const reserved = (h: typeof a) => sh('ip', ['netns', 'exec', h!.netns, 'cat', '/proc/sys/net/ipv4/ip_local_reserved_ports']).stdout.trim();
    expect(reserved(a)).toBe('51820-52819'); // the default range
    expect(reserved(b)).toBe('51820-51821');

    // MTU: the underlay's 1500 minus WireGuard's 60.
    expect(links(nsc).find((l) => l.ifname === 'nsm-1')!.mtu).toBe(1440);
    // Full-size packets both ways leave each host unfragmented (wireguard-go pads by the MTU it knows).
    const fragments = () => ipCounter(a!.netns, 'FragCreates') + ipCounter(b!.netns, 'FragCreates');
    const fragmentsBefore = fragments();
    for (const [from, to] of [[nsc, '172.16.1.100'], [nse, '172.16.1.101']] as const) {
      const r = sh('ip', ['netns', 'exec', from, 'ping', '-c', '3', '-i', '0.2', '-W', '2', '-M', 'do', '-s', String(1440 - 28), to]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
    }
    expect(fragments() - fragmentsBefore).toBe(0);

    const sa = a!.agent!.cliJson(['status']);
    const sb = b!.agent!.cliJson(['status']);
    const ca = sa.connections.find((x: any) => x.clientId === 'wg-1');
    const cb = sb.connections.find((x: any) => x.clientId === 'wg-1');
    expect(ca.mechanism).toBe('KERNEL');
    expect(ca.tunnel.type).toBe('WIREGUARD');
    expect(cb.mechanism).toBe('WIREGUARD');
    expect(ca.tunnel.parameters).toEqual(cb.parameters);
    const p = cb.parameters;
    expect(p.src_ip).toBe(a!.ip);
    expect(p.dst_ip).toBe(b!.ip);
    expect(p.MTU).toBe('1440');
    expect(p.src_public_key).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(p.dst_public_key).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(cb.path.map((s: any) => s.name)).toEqual(['host-a-nsc', 'host-a', 'host-b', 'icmp-responder-b']);

    // The status fields an operator reads: health, path, addresses from each side, age.
    expect(sa.svid.spiffeId).toBe('spiffe://example.org/host-a');
    expect(sa.svid.expires).toBeGreaterThan(Date.now());
    expect(sa.registryHealth.state).toBe('reachable');
    expect(sa.registryHealth.since).toBeLessThanOrEqual(Date.now());
    expect(ca.direction).toBe('out');
    expect(ca.route).toEqual({ mechanism: 'WIREGUARD', peerAgent: 'host-b', peerHost: b!.ip, peerUrl: `tcp://${b!.ip}:5001`, device: dev0(ca) });
    expect([ca.localIps, ca.peerIps]).toEqual([['172.16.1.101/32'], ['172.16.1.100/32']]);
    expect(ca.created).toBeLessThanOrEqual(Date.now());
    expect(ca.lastHeal).toBeNull();
    expect(cb.direction).toBe('in');
    expect(cb.clientNode).toBe('host-a');
    expect(cb.route).toMatchObject({ mechanism: 'WIREGUARD', peerAgent: 'host-a', peerHost: a!.ip, peerUrl: '' });
    expect([cb.localIps, cb.peerIps]).toEqual([['172.16.1.100/32'], ['172.16.1.101/32']]);
    const tableA = a!.agent!.cli(['status']).stdout;
    expect(tableA).toMatch(/^wg-1 +icmp-responder +UP +WIREGUARD to host-b +\d/m);
    expect(tableA).toContain(`    nsm-1 in ${nsc}: 172.16.1.101/32 -> icmp-responder-b 172.16.1.100/32`);
    expect(tableA).toContain(`via host-b ${b!.ip}, tcp://${b!.ip}:5001`);
    expect(tableA).toMatch(/^registry: +tcp:\/\/\S+, reachable for /m);
    const tableB = b!.agent!.cli(['status']).stdout;
    expect(tableB.split('SERVED')[1]).toMatch(/^host-a +wg-1 +icmp-responder +icmp-responder-b +UP +WIREGUARD from host-a +\d/m);
    expect(tableB).toContain('    172.16.1.100/32 <- client 172.16.1.101/32');
    for (const line of [...tableA.split('\n'), ...tableB.split('\n')]) expect(line.length).toBeLessThanOrEqual(100);

    // wg show: the client's device has exactly one peer, with a recent handshake.
    const dev = ca.tunnel.device.device as string;
    const dump = sh('wg', ['show', dev, 'dump']);
    expect(dump.code).toBe(0);
    const peers = dump.stdout.trim().split('\n').slice(1);
    expect(peers).toHaveLength(1);
    const [pub, , endpoint, , handshake] = peers[0]!.split('\t');
    expect(pub).toBe(p.dst_public_key);
    expect(endpoint).toBe(`${b!.ip}:${p.dst_port}`);
    expect(Date.now() / 1000 - Number(handshake)).toBeLessThan(60);

    // iperf3 over the vWire.
    const server = spawn('ip', ['netns', 'exec', nse, 'iperf3', '-s', '-1', '-B', '172.16.1.100'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 300));
      const r = spawnSync('ip', ['netns', 'exec', nsc, 'iperf3', '-c', '172.16.1.100', '-t', '1', '-J'], { encoding: 'utf8', timeout: 30_000 });
      expect(r.status).toBe(0);
      const bps = JSON.parse(r.stdout).end.sum_received.bits_per_second;
      expect(bps).toBeGreaterThan(1e6);
    } finally {
      server.kill('SIGKILL');
    }

    expect(a!.agent!.cli(['disconnect', 'wg-1']).code).toBe(0);
    expect(links(nsc).map((l) => l.ifname)).toEqual(['lo']);
    expect(links(nse).map((l) => l.ifname)).toEqual(['lo']);
    expect(wgProcs().sort()).toEqual(before.sort());
    expect(b!.agent!.cliJson(['status']).connections).toEqual([]);
  }, 60_000);

  it('Kernel2Ethernet2Kernel: VXLAN for an ETHERNET service, ping both ways', async () => {
    const [a, b] = mesh.hosts;
    const c = a!.agent!.cliJson(['connect', 'kernel://l2-responder/nsm-2', '--netns', nsc, '--id', 'vx-1']);
    expect(c.srcIps).toEqual(['172.16.2.101/32']);
    expect(ping(nsc, '172.16.2.100', 3)).toBe(true);
    expect(ping(nseEth, '172.16.2.101', 3)).toBe(true);
    const cb = b!.agent!.cliJson(['status']).connections.find((x: any) => x.clientId === 'vx-1');
    const ca = a!.agent!.cliJson(['status']).connections.find((x: any) => x.clientId === 'vx-1');
    expect(cb.mechanism).toBe('VXLAN');
    expect(ca.tunnel.parameters).toEqual(cb.parameters);
    const vni = Number(cb.parameters.vni);
    expect(vni).toBeGreaterThan(0);
    expect(vni).toBeLessThan(2 ** 24);
    // a's address sorts before b's: the VNI is even.
    expect(vni % 2).toBe(0);
    expect(cb.parameters.src_port).toBe('4789');
    expect(cb.parameters.MTU).toBe('1446');
    const detail = sh('ip', ['-n', nsc, '-d', '-j', 'link', 'show', 'nsm-2']);
    const info = JSON.parse(detail.stdout)[0].linkinfo;
    expect(info.info_kind).toBe('vxlan');
    expect(info.info_data.id).toBe(vni);
    expect(a!.agent!.cli(['disconnect', 'vx-1']).code).toBe(0);
    expect(links(nsc).map((l) => l.ifname)).toEqual(['lo']);
    expect(links(nseEth).map((l) => l.ifname)).toEqual(['lo']);
  }, 60_000);

  it('registers host-b endpoints in host-c registry with host-b TCP URL and the nodeName label', () => {
    const [, b, c] = mesh.hosts;
    const list = c!.agent!.cliJson(['endpoints']);
    const ep = list.find((e: any) => e.name === 'icmp-responder-b');
    expect(ep.url).toBe(`tcp://${b!.ip}:5001`);
    expect(ep.network_service_labels['icmp-responder'].labels).toMatchObject({ app: 'icmp', nodeName: 'host-b' });
    const services = c!.agent!.cliJson(['services']);
    expect(services.find((s: any) => s.name === 'l2-responder').payload).toBe('ETHERNET');
  });

  describe('bad input leaves nothing behind and both agents keep serving', () => {
    let wgBefore: number[];
    let rawPeer: { cert: string; key: string; bundle: string };
    const request = (id: string, service: string, mech: Record<string, unknown>) => ({
      connection: { id, network_service: service, path: { index: 0, path_segments: [{ name: 'raw-peer', id }] } },
      mechanism_preferences: [mech],
    });
    const nothingLeft = () => {
      const [a, b] = mesh.hosts;
      expect(links(nsc).map((l) => l.ifname)).toEqual(['lo']);
      expect(links(nse).map((l) => l.ifname)).toEqual(['lo']);
      expect(links(nseEth).map((l) => l.ifname)).toEqual(['lo']);
      for (const h of [a!, b!]) expect(links(h.netns).map((l) => l.ifname).sort()).toEqual(['eth0', 'lo']);
      expect(wgProcs().sort()).toEqual(wgBefore);
      expect(a!.agent!.cliJson(['status']).connections).toEqual([]);
      expect(b!.agent!.cliJson(['status']).connections).toEqual([]);
    };
    beforeAll(() => {
      wgBefore = wgProcs().sort();
      // The raw peer is a workload of the same trust domain: the agents let it in (mTLS, tokens).
      rawPeer = issueFiles(spire[0]!, 'spiffe://example.org/raw-peer', mesh.hosts[0]!.agent!.dir);
    });

    it('a malformed WireGuard public key is INVALID_ARGUMENT naming the key', () => {
      const [a, b] = mesh.hosts;
      const r = callFrom(a!.netns, `${b!.ip}:5001`, 'Request', request('bad-key', 'icmp-responder', {
        cls: 'REMOTE',
        type: 'WIREGUARD',
        parameters: { src_ip: a!.ip, src_port: '51900', src_public_key: 'bm90IGEga2V5', MTU: '1440' },
      }), { identity: rawPeer });
      expect(r.code, r.details).toBe(grpc.status.INVALID_ARGUMENT);
      expect(r.details).toMatch(/src_public_key.*malformed WireGuard public key/);
      nothingLeft();
    });

    it('an unknown mechanism is INVALID_ARGUMENT listing what was offered', () => {
      const [a, b] = mesh.hosts;
      const r = callFrom(a!.netns, `${b!.ip}:5001`, 'Request', request('bad-mech', 'icmp-responder', { cls: 'REMOTE', type: 'IPSEC', parameters: {} }), { identity: rawPeer });
      expect(r.code, r.details).toBe(grpc.status.INVALID_ARGUMENT);
      expect(r.details).toMatch(/cannot support any of the requested mechanisms: \[IPSEC\]/);
      nothingLeft();
    });

    it('a VNI out of range is INVALID_ARGUMENT', () => {
      const [a, b] = mesh.hosts;
      const r = callFrom(a!.netns, `${b!.ip}:5001`, 'Request', request('bad-vni', 'l2-responder', {
        cls: 'REMOTE',
        type: 'VXLAN',
        parameters: { src_ip: a!.ip, src_port: '4789', vni: '16777216', MTU: '1446' },
      }), { identity: rawPeer });
      expect(r.code, r.details).toBe(grpc.status.INVALID_ARGUMENT);
      expect(r.details).toMatch(/vni must be 1\.\.16777215/);
      nothingLeft();
    });

    it('a malformed src_ip and a foreign VXLAN port are INVALID_ARGUMENT', () => {
      const [a, b] = mesh.hosts;
      const ip = callFrom(a!.netns, `${b!.ip}:5001`, 'Request', request('bad-ip', 'icmp-responder', {
        cls: 'REMOTE', type: 'WIREGUARD', parameters: { src_ip: '10.0.0.300', src_port: '51900', src_public_key: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=' },
      }), { identity: rawPeer });
      expect(ip.code, ip.details).toBe(grpc.status.INVALID_ARGUMENT);
      expect(ip.details).toMatch(/src_ip must be an IP address/);
      const port = callFrom(a!.netns, `${b!.ip}:5001`, 'Request', request('bad-port', 'l2-responder', {
        cls: 'REMOTE', type: 'VXLAN', parameters: { src_ip: a!.ip, src_port: '8472' },
      }), { identity: rawPeer });
      expect(port.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(port.details).toMatch(/UDP port 4789/);
      nothingLeft();
    });

    it('no free WireGuard port on the serving host is RESOURCE_EXHAUSTED to the client', async () => {
      const [a, b] = mesh.hosts;
      const release = await holdUdpPorts(b!.netns, [51820, 51821]);
      try {
        const r = a!.agent!.cli(['connect', 'kernel://icmp-responder/nsm-1', '--netns', nsc, '--id', 'no-port']);
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(/no free UDP port in 51820-51821/);
        nothingLeft();
      } finally {
        release();
      }
      // and once a port is free again, the same request works
      const ok = a!.agent!.cliJson(['connect', 'kernel://icmp-responder/nsm-1', '--netns', nsc, '--id', 'port-back']);
      expect(ok.state).toBe('UP');
      expect(a!.agent!.cli(['disconnect', 'port-back']).code).toBe(0);
      nothingLeft();
    }, 30_000);

    it('an endpoint URL nobody answers at is UNAVAILABLE naming it', async () => {
      const [a, , c] = mesh.hosts;
      const ghostIp = c!.ip.replace(/\.\d+$/, '.99');
      const reg = newRegistryClients(`unix://${c!.agent!.socket}`, grpc.credentials.createInsecure());
      // One deadline per call: the failing connect in between may take seconds on a loaded host.
      const ctx = () => Ctx.background().withTimeout(5_000)[0];
      try {
        await grpcNsRegistry(reg.ns).register(ctx(), { name: 'ghost', payload: 'IP' });
        await grpcNseRegistry(reg.nse).register(ctx(), { name: 'ghost-1', network_service_names: ['ghost'], url: `tcp://${ghostIp}:5001` });
        const r = a!.agent!.cli(['connect', 'kernel://ghost/nsm-1', '--netns', nsc, '--id', 'ghost']);
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(new RegExp(`cannot reach tcp://${ghostIp.replace(/\./g, '\\.')}:5001`));
        nothingLeft();
        await grpcNseRegistry(reg.nse).unregister(ctx(), { name: 'ghost-1' });
      } finally {
        reg.close();
      }
    }, 30_000);
  });

  describe('zero trust on the TCP listener', () => {
    const req = (id: string, service: string, segs: { name: string; id: string; token?: string }[] = []) => ({
      connection: { id, network_service: service, path: { index: segs.length, path_segments: [...segs, { name: 'raw-peer', id }] } },
      mechanism_preferences: [{ cls: 'REMOTE', type: 'IPSEC', parameters: {} }],
    });
    const target = () => `${mesh.hosts[1]!.ip}:5001`;
    const tokenMd = (t: { token: string; expires: number }) => ({ 'nsm-client-token': t.token, 'nsm-client-token-expires': new Date(t.expires).toISOString() });

    it('a peer whose certificate comes from an untrusted CA fails the handshake', async () => {
      const impostor = issueFiles(spire[0]!, 'spiffe://example.org/raw-peer', mesh.hosts[0]!.agent!.dir, LocalCa.create({ trustDomain: 'example.org' }), 'impostor');
      const b = mesh.hosts[1]!.agent!;
      const seen = b.logs.length;
      const r = callFrom(mesh.hosts[0]!.netns, target(), 'Request', req('zt-ca', 'icmp-responder'), { identity: impostor });
      expect(r.code).toBe(grpc.status.UNAVAILABLE);
      // refused by host-b at the handshake, not by the impostor's own checks
      const refused = await until(() => /mTLS (peer refused|handshake failed)/.test(b.logs.slice(seen).join('')), 2_000);
      expect(refused, b.logs.slice(seen).join('')).toBe(true);
    });

    it('a token signed by a key other than the TLS peer, an expired token and a broken chain are PERMISSION_DENIED', () => {
      const dir = mesh.hosts[0]!.agent!.dir;
      const peer = issueFiles(spire[0]!, 'spiffe://example.org/raw-peer', dir, undefined, 'zt');
      const other = spire[0]!.issuer('example.org').issue('spiffe://example.org/raw-peer', { ttlMs: 600_000 });
      const tokens = new SpiffeTokenSource({ svid: () => peer.svid } as never, 600_000);
      const host = mesh.hosts[0]!.netns;
      const audience = 'spiffe://example.org/host-b';

      const forged = tokens.signWith(other, Date.now(), audience);
      const r1 = callFrom(host, target(), 'Request', req('zt-key', 'icmp-responder'), { identity: peer, autoTokens: false, metadata: tokenMd(forged) });
      expect(r1.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(r1.details).toMatch(/prev_token_signed/);

      const old = tokens.signWith(peer.svid, Date.now() - 3600_000, audience);
      const r2 = callFrom(host, target(), 'Request', req('zt-exp', 'icmp-responder'), { identity: peer, autoTokens: false, metadata: { ...tokenMd(old), 'nsm-client-token-expires': new Date(Date.now() + 60_000).toISOString() } });
      expect(r2.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(r2.details).toMatch(/expired/);

      // segment 0 claims to be addressed to someone other than the raw peer (segment 1)
      const seg0 = tokens.signWith(peer.svid, Date.now(), 'spiffe://example.org/somebody-else');
      const r3 = callFrom(host, target(), 'Request', req('zt-chain', 'icmp-responder', [{ name: 'origin', id: 'zt-chain-0', token: seg0.token }]), { identity: peer });
      expect(r3.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(r3.details).toMatch(/tokens_chained/);
      expect(mesh.hosts[1]!.agent!.cliJson(['status']).connections).toEqual([]);
    });

    it('the service policy admits host-a and refuses another identity, naming both', () => {
      const [a, b] = mesh.hosts;
      const peer = issueFiles(spire[0]!, 'spiffe://example.org/raw-peer', a!.agent!.dir, undefined, 'pol');
      const r = callFrom(a!.netns, target(), 'Request', req('zt-pol', 'guarded'), { identity: peer });
      expect(r.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(r.details).toMatch(/spiffe:\/\/example\.org\/raw-peer.*refused by spiffe:\/\/example\.org\/host-b/);
      const ok = a!.agent!.cliJson(['connect', 'kernel://guarded/nsm-3', '--netns', nsc, '--id', 'guarded-1']);
      expect(ok.state).toBe('UP');
      expect(ping(nsc, '172.16.3.100', 2)).toBe(true);
      expect(a!.agent!.cli(['disconnect', 'guarded-1']).code).toBe(0);
      expect(b!.agent!.cliJson(['status']).connections).toEqual([]);
    }, 30_000);
  
    it('in the registry, only the identity that registered an endpoint may remove it', () => {
      const [a, , c] = mesh.hosts;
      const peer = issueFiles(spire[0]!, 'spiffe://example.org/raw-peer', a!.agent!.dir, undefined, 'reg');
      const registry = `${c!.ip}:5002`;
      const r = callFrom(a!.netns, registry, 'Unregister', { name: 'icmp-responder-b' }, { identity: peer, service: 'nse' });
      expect(r.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(r.details).toMatch(/spiffe:\/\/example\.org\/raw-peer/);
      expect(c!.agent!.cliJson(['endpoints']).some((e: any) => e.name === 'icmp-responder-b')).toBe(true);
      // a name of its own is fine
      const own = callFrom(a!.netns, registry, 'Register', { name: 'raw-ep', network_service_names: ['raw'], url: 'tcp://10.0.0.1:5001' }, { identity: peer, service: 'nse' });
      expect(own.code, own.details).toBe(0);
      expect(callFrom(a!.netns, registry, 'Unregister', { name: 'raw-ep' }, { identity: peer, service: 'nse' }).code).toBe(0);
    });
  });

  it('a registry restart keeps vWires passing traffic; host-b re-registers within 2 s', async () => {
    const [a, b, c] = mesh.hosts;
    a!.agent!.cliJson(['connect', 'kernel://icmp-responder/nsm-1', '--netns', nsc, '--id', 'reg-1']);
    expect(ping(nsc, '172.16.1.100', 2)).toBe(true);
    const dir = c!.agent!.dir;
    await c!.agent!.stop('SIGKILL', true);
    expect(ping(nsc, '172.16.1.100', 2)).toBe(true);
    await mesh.start(2, c!.config!, { dir });
    const t0 = Date.now(); // the registry serves again
    const back = await until(() => {
      const r = c!.agent!.cli(['endpoints', '--json']);
      return r.code === 0 && JSON.parse(r.stdout).some((e: any) => e.name === 'icmp-responder-b') ? Date.now() - t0 : undefined;
    }, 5_000);
    expect(back).toBeDefined();
    expect(back!).toBeLessThan(2_000);
    console.log(`host-b re-registered ${back} ms after the registry came back`);
    expect(ping(nsc, '172.16.1.100', 2)).toBe(true);
    expect(ping(nse, '172.16.1.101', 2)).toBe(true);
    expect(a!.agent!.cli(['disconnect', 'reg-1']).code).toBe(0);
    expect(b!.agent!.cliJson(['status']).connections).toEqual([]);
  }, 60_000);
});
