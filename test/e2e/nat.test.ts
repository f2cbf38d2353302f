/**
 * End to end: a host behind NAT with `publicIP` (upstream swapip). Host a is on the shared
 * bridge; host b sits on a private network behind a router namespace that owns the public
 * address on the bridge and translates with nftables (everything to the public address DNAT
 * to b, b's traffic out SNAT to it). b's agent registers into a's registry and serves an
 * endpoint; a's registry, tunnels and pings reach b only through the public address.
 *
 *   host a   10.N.0.1 ───── bridge ───── 10.N.0.2 router ── 192.168.77.1 ── 192.168.77.2 host b
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { startAgent, type RunningAgent } from '../harness/agent.mjs';
import { isRoot, sh } from '../harness/exec.mjs';
import { buildHosts, type Mesh } from '../harness/hosts.mjs';
import { links, ping } from '../harness/netns.mjs';
import { FakeWorkloadApi } from '../helpers/spire/workload-api';

const run = isRoot && sh('test', ['-x', '/usr/sbin/nft']).code === 0 ? describe : describe.skip;

function must(cmd: string, args: string[]): void {
  const r = sh(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr.trim()}`);
}

run('NAT: a host behind a router with publicIP', () => {
  let mesh: Mesh;
  let b: RunningAgent | undefined;
  let hostB: string;
  let nscA: string;
  let nscB: string;
  let nseA: string;
  let nseB: string;
  let publicIP: string;
  const privateIP = '192.168.77.2';
  const spire: FakeWorkloadApi[] = [];

  beforeAll(async () => {
    const first = await FakeWorkloadApi.start({ trustDomains: ['example.org'], entries: [{ id: 'spiffe://example.org/host-a', ttlMs: 600_000 }] });
    spire.push(first, await FakeWorkloadApi.start({ sameCasAs: first, entries: [{ id: 'spiffe://example.org/host-natb', ttlMs: 600_000 }] }));
    mesh = await buildHosts(2, 'nat');
    const [a, router] = mesh.hosts;
    publicIP = router!.ip;
    hostB = mesh.netns('natb');
    nscA = mesh.netns('nsca');
    nscB = mesh.netns('nscb');
    nseA = mesh.netns('nsea');
    nseB = mesh.netns('nseb');
    // b's private network behind the router
    must('ip', ['link', 'add', 'eth0', 'netns', hostB, 'type', 'veth', 'peer', 'name', 'lan0', 'netns', router!.netns]);
    must('ip', ['-n', router!.netns, 'addr', 'add', '192.168.77.1/24', 'dev', 'lan0']);
    must('ip', ['-n', router!.netns, 'link', 'set', 'lan0', 'up']);
    must('ip', ['-n', hostB, 'addr', 'add', `${privateIP}/24`, 'dev', 'eth0']);
    must('ip', ['-n', hostB, 'link', 'set', 'eth0', 'up']);
    must('ip', ['-n', hostB, 'link', 'set', 'lo', 'up']);
    must('ip', ['-n', hostB, 'route', 'add', 'default', 'via', '192.168.77.1']);
    must('ip', ['netns', 'exec', router!.netns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    const nft = (...args: string[]) => must('ip', ['netns', 'exec', router!.netns, 'nft', ...args]);
    nft('add', 'table', 'ip', 'nat');
    nft('add', 'chain', 'ip', 'nat', 'pre', '{ type nat hook prerouting priority dstnat; policy accept; }');
    nft('add', 'chain', 'ip', 'nat', 'post', '{ type nat hook postrouting priority srcnat; policy accept; }');
    nft('add', 'rule', 'ip', 'nat', 'pre', 'ip', 'daddr', publicIP, 'dnat', 'to', privateIP);
    nft('add', 'rule', 'ip', 'nat', 'post', 'ip', 'saddr', '192.168.77.0/24', 'oifname', 'eth0', 'snat', 'to', publicIP);

    await mesh.start(0, {
      identity: { source: 'spiffe', socket: spire[0]!.address },
      registry: { url: 'embedded' },
      listen: { tcp: `${a!.ip}:5001` },
      wireguard: { spares: 0 },
      endpoints: [{ name: 'icmp-a', services: ['icmp-a'], cidr: '172.16.5.0/31', netns: nseA }],
    });
    b = await startAgent(
      {
        name: 'host-natb',
        identity: { source: 'spiffe', socket: spire[1]!.address },
        publicIP,
        registry: { url: `tcp://${a!.ip}:5002` },
        listen: { tcp: `${privateIP}:5001` },
        wireguard: { spares: 0 },
        endpoints: [{ name: 'icmp-b', services: ['icmp-b'], cidr: '172.16.6.0/31', netns: nseB }],
      },
      { netns: hostB },
    );
  }, 60_000);

  afterAll(async () => {
    await b?.stop('SIGTERM').catch(() => {});
    await mesh?.teardown();
    for (const s of spire) await s.close();
  });

  it('b\'s private address is not reachable from a; its endpoint is registered with the public one', () => {
    const [a] = mesh.hosts;
    expect(ping(a!.netns, privateIP, 1)).toBe(false);
    const entry = (a!.agent!.cliJson(['endpoints']) as any[]).find((e: any) => e.name === 'icmp-b');
    expect(JSON.stringify(entry)).toContain(`tcp://${publicIP}:5001`);
  });

  it('a client on a reaches b\'s endpoint: the vWire tunnels to the public address, ping both ways', () => {
    const [a] = mesh.hosts;
    const c = a!.agent!.cliJson(['connect', 'kernel://icmp-b/nsm-1', '--netns', nscA, '--id', 'tob']);
    expect(c.state).toBe('UP');
    expect(ping(nscA, '172.16.6.0', 3)).toBe(true);
    expect(ping(nseB, '172.16.6.1', 3)).toBe(true);
    const conn = a!.agent!.cliJson(['status']).connections.find((x: any) => x.clientId === 'tob');
    expect(conn.tunnel.parameters).toMatchObject({ dst_ip: publicIP, orig_dst_ip: privateIP });
    expect(a!.agent!.cli(['disconnect', 'tob']).code).toBe(0);
    expect(links(nscA).map((l) => l.ifname)).toEqual(['lo']);
  }, 30_000);

  it('a client on b reaches a\'s endpoint, offering the public address (orig_src_ip the private one)', () => {
    const [a] = mesh.hosts;
    const c = b!.cliJson(['connect', 'kernel://icmp-a/nsm-1', '--netns', nscB, '--id', 'toa']);
    expect(c.state).toBe('UP');
    expect(ping(nscB, '172.16.5.0', 3)).toBe(true);
    expect(ping(nseA, '172.16.5.1', 3)).toBe(true);
    const served = a!.agent!.cliJson(['status']).connections.find((x: any) => x.direction === 'in');
    expect(served.tunnel.parameters).toMatchObject({ src_ip: publicIP, orig_src_ip: privateIP });
    expect(b!.cli(['disconnect', 'toa']).code).toBe(0);
    expect(links(nscB).map((l) => l.ifname)).toEqual(['lo']);
  }, 30_000);
});
