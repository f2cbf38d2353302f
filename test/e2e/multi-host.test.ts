/**
 * Issue 3 end to end: three hosts (namespaces on one bridge, each running its own agent).
 * host-c runs the registry, host-b hosts the endpoints, host-a connects clients to them:
 * Kernel2IP2Kernel over WireGuard and Kernel2Ethernet2Kernel over VXLAN, negotiated between
 * the two agents with the NSM protocol.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { buildHosts, Mesh } from '../helpers/hosts';
import { addrs, links, ping, sh, isRoot } from '../helpers/exec';

const run = isRoot ? describe : describe.skip;

function wgProcs(): number[] {
  const r = sh('pgrep', ['-x', 'wireguard-go']);
  return r.stdout.split('\n').filter(Boolean).map(Number);
}

run('multi-host vWires (three agents)', () => {
  let mesh: Mesh;
  let nsc: string;
  let nse: string;
  let nseEth: string;
  const registryURL = () => `tcp://${mesh.hosts[2]!.ip}:5002`;

  beforeAll(async () => {
    mesh = await buildHosts(3, 'mh');
    nsc = mesh.netns('nsc');
    nse = mesh.netns('nse');
    nseEth = mesh.netns('nsx');
    const [a, b, c] = mesh.hosts;
    await mesh.start(2, { listen: { tcp: `${c!.ip}:5001` }, registry: { url: 'embedded' } });
    await mesh.start(1, {
      listen: { tcp: `${b!.ip}:5001` },
      registry: { url: registryURL() },
      endpoints: [
        { name: 'icmp-responder-b', services: ['icmp-responder'], cidr: '172.16.1.100/31', netns: nse, labels: { app: 'icmp' } },
        { name: 'l2-responder-b', services: ['l2-responder'], cidr: '172.16.2.100/31', netns: nseEth, payload: 'ETHERNET' },
      ],
    });
    await mesh.start(0, { listen: { tcp: `${a!.ip}:5001` }, registry: { url: registryURL() } });
  }, 60_000);

  afterAll(async () => {
    await mesh?.teardown();
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

    // MTU: the underlay's 1500 minus WireGuard's 60.
    expect(links(nsc).find((l) => l.ifname === 'nsm-1')!.mtu).toBe(1440);

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
});
