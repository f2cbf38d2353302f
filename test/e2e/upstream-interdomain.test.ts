/**
 * End to end, the interdomain wire against upstream NSM's own protos (test/fixtures/upstream):
 * two agents (domain-a.test, domain-b.test; hosts as namespaces on one bridge), a DNS server
 * (dnsmasq) and, in the test process (on the bridge through a veth of its own), stand-ins for
 * upstream's servers built only from upstream's protos (test/helpers/upstream-proxies.ts):
 *
 * - the registry of a third domain, up.test, as registry-proxy-dns reaches it;
 * - an nsmgr-proxy, published by DNS as `nsmgr-proxy.nsm-system.<domain>` of up.test and of
 *   domain-b.test. For up.test it is that domain's (remote) proxy: it strips `@up.test` and
 *   passes the Request to the endpoint's host (host-b), restoring the names in the answer. For
 *   domain-b.test it plays domain-a's (client side) proxy: names pass unchanged to domain-b's
 *   agent, which plays the remote nsmgr-proxy.
 *
 * Then a registry client built from upstream's registry.proto asks domain-b's agent as another
 * domain's registry-proxy-dns would (names stripped) and registers a floating endpoint there.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { buildHosts, type Mesh } from '../harness/hosts.mjs';
import { hasDnsmasq, nsmSystemRecords, startDnsmasq } from '../harness/dnsmasq.mjs';
import { isRoot, sh } from '../harness/exec.mjs';
import { ping } from '../harness/netns.mjs';
import { execFile, type ChildProcess } from 'node:child_process';
import { BIN } from '../harness/agent.mjs';
import { FakeWorkloadApi } from '../helpers/spire/workload-api';
import { StaticSource, contextOf } from '../helpers/spire/static-source';
import { listenMtls, type MtlsListener } from '../../src/spire';
// ./channel directly: the barrel's lazy require() of it works in the built agent, not under vitest
import { channelCredentials } from '../../src/spire/channel';
import { SpiffeTokenSource } from '../../src/spire/token';
import { UpstreamNsmgrProxy, UpstreamRegistry, closeClient } from '../helpers/upstream-proxies';
import {
  UpstreamNseRegistry,
  UpstreamNsRegistry,
  findAll,
  unary,
  type UpConnection,
  type UpNetworkService,
  type UpNse,
  type UpRequest,
} from '../helpers/upstream-nsm';

/**
 * The CLI against an agent without blocking this process: the upstream servers in it must
 * answer the agent meanwhile.
 */
function cliAsync(socket: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, NSM_AGENT_SOCKET: socket }, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr }),
    );
  });
}
async function cliJson(socket: string, args: string[]): Promise<any> {
  const r = await cliAsync(socket, [...args, '--json']);
  if (r.code !== 0) throw new Error(`nsm-agent ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const run = isRoot && hasDnsmasq() ? describe : describe.skip;

const TD = 'example.org';
const PROXY_ID = `spiffe://${TD}/nsmgr-proxy-up`;
const PROXY_SEGMENT = 'nsmgr-proxy-up';

function must(args: string[]): void {
  const r = sh('ip', args);
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
}

run('upstream wire: names, registry queries and Requests across domains against upstream protos', () => {
  let mesh: Mesh;
  let dnsmasq: ChildProcess | undefined;
  let nscA: string;
  let nseB: string;
  let nseF: string;
  let ourIp: string;
  let veth: string;
  const spire: FakeWorkloadApi[] = [];
  const listeners: MtlsListener[] = [];
  const servers: grpc.Server[] = [];
  const clients: grpc.Client[] = [];
  let identity: StaticSource;
  let registry: UpstreamRegistry;
  let proxy: UpstreamNsmgrProxy;

  async function serve(server: grpc.Server): Promise<number> {
    servers.push(server);
    const l = await listenMtls(server, `${ourIp}:0`, identity, { recycle: false });
    listeners.push(l);
    return l.port;
  }

  beforeAll(async () => {
    const first = await FakeWorkloadApi.start({ trustDomains: [TD], entries: [{ id: `spiffe://${TD}/host-a`, ttlMs: 600_000 }] });
    spire.push(first, await FakeWorkloadApi.start({ sameCasAs: first, entries: [{ id: `spiffe://${TD}/host-b`, ttlMs: 600_000 }] }));
    const ca = first.issuer(TD);
    identity = new StaticSource(contextOf(ca.issue(PROXY_ID), ca));
    mesh = await buildHosts(3, 'uw');
    const [a, b, c] = mesh.hosts;
    nscA = mesh.netns('nsca');
    nseB = mesh.netns('nseb');
    nseF = mesh.netns('nsef');
    // The test process joins the bridge: a veth from this namespace, .250 of the underlay.
    ourIp = a!.ip.replace(/\.\d+$/, '.250');
    veth = `nsmtw${process.pid.toString(36)}`.slice(0, 15);
    must(['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'pt', 'netns', mesh.underlay]);
    must(['-n', mesh.underlay, 'link', 'set', 'pt', 'master', 'br0', 'up']);
    must(['addr', 'add', `${ourIp}/24`, 'dev', veth]);
    must(['link', 'set', veth, 'up']);
    registry = new UpstreamRegistry({ service: 'icmp', endpoint: 'icmp-b', url: `tcp://${b!.ip}:5001` });
    proxy = new UpstreamNsmgrProxy({ identity, segment: PROXY_SEGMENT, domain: 'up.test', next: `${b!.ip}:5001` });
    const regPort = await serve(registry.server);
    const proxyPort = await serve(proxy.server);
    dnsmasq = await startDnsmasq(c!.netns, c!.ip, [
      ...nsmSystemRecords('registry', 'up.test', ourIp, regPort),
      ...nsmSystemRecords('nsmgr-proxy', 'up.test', ourIp, proxyPort),
      ...nsmSystemRecords('registry', 'domain-b.test', b!.ip, 5002),
      ...nsmSystemRecords('nsmgr-proxy', 'domain-b.test', ourIp, proxyPort),
    ]);
    const common = (i: number) => ({
      identity: { source: 'spiffe', socket: spire[i]!.address },
      registry: { url: 'embedded' },
      interdomain: { dnsServers: [c!.ip], timeout: '2s' },
      wireguard: { spares: 0 },
    });
    await mesh.start(0, { ...common(0), domain: 'domain-a.test', listen: { tcp: `${a!.ip}:5001` } });
    await mesh.start(1, {
      ...common(1),
      domain: 'domain-b.test',
      listen: { tcp: `${b!.ip}:5001` },
      endpoints: [
        { name: 'icmp-b', services: ['icmp'], cidr: '172.16.2.0/31', netns: nseB },
        // floating: registered into up.test's registry
        { name: 'nse-f@up.test', services: ['svc-f@up.test'], cidr: '172.16.3.0/31', netns: nseF },
      ],
    });
  }, 60_000);

  afterAll(async () => {
    const steps: (() => unknown)[] = [
      ...clients.map((c) => () => closeClient(c)),
      () => proxy?.close(),
      ...listeners.map((l) => () => l.close()),
      ...servers.map((s) => () => s.forceShutdown()),
      () => dnsmasq?.exitCode === null && dnsmasq.kill('SIGKILL'),
      () => veth && sh('ip', ['link', 'del', veth]),
      () => mesh?.teardown(),
      ...spire.map((s) => () => s.close()),
    ];
    for (const step of steps) await Promise.resolve().then(step).catch(() => {});
  });

  /** The mechanism preferences of a Request as upstream decodes them, each of class REMOTE. */
  const mechanismOf = (r: UpRequest) => {
    expect(r.mechanism_preferences.length).toBeGreaterThan(0);
    for (const m of r.mechanism_preferences) expect(m.cls).toBe('REMOTE');
    return r.mechanism_preferences;
  };

  it('the client side: registry queries arrive stripped, the Request at the remote nsmgr-proxy with @domain; the answer is restored', async () => {
    const [a, b] = mesh.hosts;
    proxy.requests.length = 0;
    proxy.closes.length = 0;
    const c = await cliJson(a!.agent!.socket, ['connect', 'kernel://icmp@up.test/nsm-1', '--netns', nscA, '--id', 'up']);
    expect(c.state).toBe('UP');
    expect(ping(nscA, '172.16.2.0', 3)).toBe(true);

    // registry-proxy-dns's side: the remote registry is asked for names without the suffix
    const nsNames = registry.nsQueries.map((q) => q.network_service.name);
    expect(nsNames).toContain('icmp');
    const nseAsked = registry.nseQueries.map((q) => q.network_service_endpoint);
    expect(nseAsked.some((q) => q.network_service_names.includes('icmp'))).toBe(true);
    for (const name of [...nsNames, ...nseAsked.flatMap((q) => [q.name, ...q.network_service_names])]) expect(name).not.toContain('@');

    // the remote nsmgr-proxy gets the names with the domain (its interdomainbypass strips them)
    const first = proxy.requests[0]!;
    expect(first.error).toBeUndefined();
    const got = first.received as UpRequest;
    expect(got.connection!.network_service).toBe('icmp@up.test');
    expect(got.connection!.network_service_endpoint_name).toBe('icmp-b@up.test');
    const path = got.connection!.path!;
    expect(path.path_segments.length).toBe(path.index + 1);
    const mine = path.path_segments[path.index]!;
    expect(mine.id).toBe(got.connection!.id);
    expect(mine.name).not.toBe('');
    for (const s of path.path_segments) {
      expect(s.token.split('.')).toHaveLength(3);
      expect(s.expires?.seconds).toBeGreaterThan(Date.now() / 1000);
    }
    // the caller's token, in the metadata as upstream's token.FromContext reads it, addressed to
    // this proxy as upstream's tokens_chained needs
    expect(first.tokenError).toBeUndefined();
    expect(first.token?.sub).toBe(`spiffe://${TD}/host-a`);
    expect(first.token?.aud).toContain(PROXY_ID);
    // mechanism preferences with upstream's parameter names (mechanisms/common, wireguard, vxlan)
    const prefs = mechanismOf(got);
    expect(prefs.map((m) => m.type)).toContain('WIREGUARD');
    for (const m of prefs) {
      expect(m.parameters['src_ip']).toBe(a!.ip);
      if (m.type === 'WIREGUARD') {
        expect(Buffer.from(m.parameters['src_public_key'] ?? '', 'base64')).toHaveLength(32);
        expect(Number(m.parameters['src_port'])).toBeGreaterThan(0);
      }
    }
    // the endpoint's host got the names without the domain, and answered
    expect(first.sent!.network_service).toBe('icmp');
    expect(first.answer!.network_service).toBe('icmp');
    expect(first.answer!.network_service_endpoint_name).toBe('icmp-b');
    expect(first.answer!.state).toBe('UP');
    const mech = first.answer!.mechanism!;
    expect(mech.cls).toBe('REMOTE');
    expect(mech.parameters['dst_ip']).toBe(b!.ip);
    if (mech.type === 'WIREGUARD') {
      expect(Buffer.from(mech.parameters['dst_public_key'] ?? '', 'base64')).toHaveLength(32);
      expect(Number(mech.parameters['dst_port'])).toBeGreaterThan(0);
    }
    expect(first.answer!.context.ip_context.src_ip_addrs).toEqual(['172.16.2.1/32']);
    // the agent accepted the answer with the names restored
    const onA = (await cliJson(a!.agent!.socket, ['status'])).connections.find((x: any) => x.clientId === 'up');
    expect(onA.service).toBe('icmp@up.test');
    expect(onA.endpoint).toBe('icmp-b@up.test');

    expect((await cliAsync(a!.agent!.socket, ['disconnect', 'up'])).code).toBe(0);
    expect(proxy.closes.length).toBeGreaterThan(0);
    const closed = proxy.closes[proxy.closes.length - 1]!;
    expect((closed.received as UpConnection).network_service).toBe('icmp@up.test');
    expect(closed.error).toBeUndefined();
    expect(closed.tokenError).toBeUndefined();
    expect((await cliJson(b!.agent!.socket, ['status'])).connections).toEqual([]);
  }, 45_000);

  it('the remote side: the agent takes a Request for svc@its domain from an upstream nsmgr-proxy, answers with the names restored, and Close works', async () => {
    const [a, b] = mesh.hosts;
    proxy.requests.length = 0;
    proxy.closes.length = 0;
    const c = await cliJson(a!.agent!.socket, ['connect', 'kernel://icmp@domain-b.test/nsm-2', '--netns', nscA, '--id', 'viab']);
    expect(c.state).toBe('UP');
    expect(ping(nscA, '172.16.2.0', 3)).toBe(true);
    const first = proxy.requests[0]!;
    expect(first.error).toBeUndefined();
    expect(first.tokenError).toBeUndefined();
    // passed on unchanged, as the client side's proxy does (its interdomainbypass knows the URL)
    expect(first.sent!.network_service).toBe('icmp@domain-b.test');
    expect(first.sent!.network_service_endpoint_name).toBe('icmp-b@domain-b.test');
    // domain-b's agent answered, decoded with upstream's protos: names restored, path kept
    const ans = first.answer!;
    expect(ans.network_service).toBe('icmp@domain-b.test');
    expect(ans.network_service_endpoint_name).toBe('icmp-b@domain-b.test');
    expect(ans.state).toBe('UP');
    expect(ans.mechanism!.cls).toBe('REMOTE');
    expect(ans.mechanism!.parameters['dst_ip']).toBe(b!.ip);
    const sentPath = first.sent!.path!;
    expect(ans.path!.index).toBe(sentPath.index);
    expect(ans.path!.path_segments.slice(0, sentPath.index + 1).map((s) => s.name)).toEqual(sentPath.path_segments.map((s) => s.name));
    expect(ans.path!.path_segments.length).toBeGreaterThan(sentPath.index + 1);
    expect(ans.id).toBe(sentPath.path_segments[sentPath.index]!.id);
    // on domain-b's host the connection is known by the names without the domain
    const onB = (await cliJson(b!.agent!.socket, ['status'])).connections;
    expect(onB).toHaveLength(1);
    expect(onB[0].service).toBe('icmp');

    expect((await cliAsync(a!.agent!.socket, ['disconnect', 'viab'])).code).toBe(0);
    const closed = proxy.closes[proxy.closes.length - 1]!;
    expect(closed.sent!.network_service).toBe('icmp@domain-b.test');
    expect(closed.error).toBeUndefined();
    expect((await cliJson(b!.agent!.socket, ['status'])).connections).toEqual([]);
  }, 45_000);

  it('a floating endpoint registers into an upstream registry with the names stripped, as registry-proxy-dns forwards it', async () => {
    const b = mesh.hosts[1]!;
    const until = Date.now() + 10_000;
    while (!registry.registrations.some((r) => r.call === 'nse.Register') && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    const nses = registry.registrations.filter((r) => r.call === 'nse.Register');
    expect(nses.length).toBeGreaterThan(0);
    const nse = nses[0]!.message as UpNse;
    expect(nse.name).toBe('nse-f');
    expect(nse.network_service_names).toEqual(['svc-f']);
    expect(nse.url).toBe(`tcp://${b.ip}:5001`);
    // the path header as upstream's grpcmetadata encodes it (Go's JSON of the Path)
    // (the first hop's: an empty path, as upstream's client sends before any registry has added to it)
    expect(JSON.parse(nses[0]!.path ?? 'null')).toEqual({ Index: 0, PathSegments: null });
    const services = registry.registrations.filter((r) => r.call === 'ns.Register').map((r) => (r.message as UpNetworkService).name);
    expect(services).toContain('svc-f');
  }, 20_000);

  it('the registry side: an upstream registry client finds and registers with stripped names, as registry-proxy-dns does', async () => {
    const b = mesh.hosts[1]!;
    const tokens = new SpiffeTokenSource(identity, 600_000);
    const { credentials } = channelCredentials(identity, { tokens });
    const nsReg = new UpstreamNsRegistry(`${b.ip}:5002`, credentials);
    const nseReg = new UpstreamNseRegistry(`${b.ip}:5002`, credentials, { channelOverride: nsReg.getChannel() });
    clients.push(nsReg, nseReg);

    const services = await findAll<{ network_service: UpNetworkService; deleted: boolean }>(nsReg, { network_service: { name: 'icmp' }, watch: false });
    expect(services.map((s) => s.network_service.name)).toEqual(['icmp']);
    const found = await findAll<{ network_service_endpoint: UpNse; deleted: boolean }>(nseReg, {
      network_service_endpoint: { network_service_names: ['icmp'] },
      watch: false,
    });
    expect(found).toHaveLength(1);
    const nse = found[0]!.network_service_endpoint;
    expect(nse.name).toBe('icmp-b');
    expect(nse.network_service_names).toEqual(['icmp']);
    expect(nse.url).toBe(`tcp://${b.ip}:5001`);
    expect(found[0]!.deleted).toBe(false);

    // a floating registration forwarded by another domain's registry-proxy-dns: names stripped,
    // the URL that of the endpoint's domain's nsmgr-proxy
    // with the registry path header of upstream's grpcmetadata, answered in a response header
    const url = `tcp://${ourIp}:5004`;
    const withPath = () => {
      const md = new grpc.Metadata();
      md.set('path', JSON.stringify({ Index: 0, PathSegments: null }));
      return md;
    };
    const answered: string[] = [];
    const headers = (md: grpc.Metadata) => answered.push(String(md.get('path')[0] ?? ''));
    const ns = await unary<UpNetworkService>(nsReg, 'Register', { name: 'svc-f', payload: 'IP' }, { metadata: withPath(), headers });
    expect(ns.name).toBe('svc-f');
    const exp = { seconds: Math.floor(Date.now() / 1000) + 60, nanos: 0 };
    const reg = await unary<UpNse>(nseReg, 'Register', { name: 'nse-f', network_service_names: ['svc-f'], url, expiration_time: exp }, { metadata: withPath(), headers });
    // answered as sent: the agent's registry adds no segment of its own, where upstream's
    // registry updatepath would add the caller's and its own (docs/interdomain.md)
    expect(answered.map((a) => JSON.parse(a))).toEqual([
      { Index: 0, PathSegments: null },
      { Index: 0, PathSegments: null },
    ]);
    expect(reg.name).toBe('nse-f');
    expect(reg.network_service_names).toEqual(['svc-f']);
    expect(reg.url).toBe(url);
    const back = await findAll<{ network_service_endpoint: UpNse }>(nseReg, { network_service_endpoint: { network_service_names: ['svc-f'] }, watch: false });
    expect(back.map((r) => [r.network_service_endpoint.name, r.network_service_endpoint.url])).toEqual([['nse-f', url]]);
    await unary(nseReg, 'Unregister', reg, { metadata: withPath() });
    await unary(nsReg, 'Unregister', ns, { metadata: withPath() });
    const gone = await findAll<{ network_service_endpoint: UpNse }>(nseReg, { network_service_endpoint: { name: 'nse-f' }, watch: false });
    expect(gone).toEqual([]);
  }, 30_000);
});
