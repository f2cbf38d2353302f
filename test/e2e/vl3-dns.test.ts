/**
 * End to end: vL3 member names across hosts. host-a serves the registry and vl3-ipam; host-a
 * and host-b each host a vL3 endpoint of `vl3-dns` (router in a namespace) and a client
 * namespace (`connect --netns`). Each member is `<namespace>.vl3-dns`, served by its host's
 * endpoint on the endpoint's own address and found by the other host's endpoint through its
 * peer; the client namespaces resolve through the agent's resolver (`ip netns exec`, glibc).
 * Names come with a join and go with a leave; malformed packets to an endpoint's DNS port do
 * not stop it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildHosts, type Mesh } from '../harness/hosts.mjs';
import { isRoot, sh, until } from '../harness/exec.mjs';
import { globalAddrs } from '../harness/netns.mjs';
import { FakeWorkloadApi } from '../helpers/spire/workload-api';

const run = isRoot ? describe : describe.skip;
const SERVICE = 'vl3-dns';

/** What `getent hosts KEY` prints in `netns` (glibc, through /etc/netns/<netns>/resolv.conf): [address, name], or []. */
function getent(netns: string, key: string): string[] {
  const r = sh('ip', ['netns', 'exec', netns, 'getent', 'hosts', key]);
  return r.code === 0 ? r.stdout.trim().split(/\s+/).slice(0, 2) : [];
}

run('vL3 member names across hosts', () => {
  let mesh: Mesh;
  const spire: FakeWorkloadApi[] = [];
  const routers: string[] = [];
  const clients: string[] = [];
  /** Every member namespace made, for the check that none keeps an /etc/netns directory. */
  const members: string[] = [];
  const addr = (ns: string) => globalAddrs(ns, 'nsm-1')[0]!;

  const config = (i: number): Record<string, unknown> => {
    const h = mesh.hosts[i]!;
    const a = mesh.hosts[0]!.ip;
    return {
      identity: { source: 'spiffe', socket: spire[i]!.address },
      listen: { tcp: `${h.ip}:5001` },
      metrics: { listen: '127.0.0.1:9464' },
      registry: i === 0 ? { url: 'embedded', listen: `${a}:5002` } : { url: `tcp://${a}:5002` },
      ...(i === 0 ? { vl3ipam: { listen: `${a}:5006`, prefix: '172.16.0.0/16', clientPrefixLength: 24 } } : {}),
      endpoints: [{ name: `vl3d-${h.name}`, services: [SERVICE], vl3: { ipam: [`tcp://${a}:5006`] }, netns: routers[i] }],
    };
  };

  const connect = (i: number, ns: string, id: string) => {
    members.push(ns);
    const r = mesh.hosts[i]!.agent!.cli(['connect', `kernel://${SERVICE}/nsm-1`, '--netns', ns, '--id', id]);
    expect(r.code, r.stderr).toBe(0);
  };

  beforeAll(async () => {
    const first = await FakeWorkloadApi.start({ trustDomains: ['example.org'], entries: [{ id: 'spiffe://example.org/host-a', ttlMs: 120_000 }] });
    spire.push(first, await FakeWorkloadApi.start({ sameCasAs: first, entries: [{ id: 'spiffe://example.org/host-b', ttlMs: 120_000 }] }));
    mesh = await buildHosts(2, 'vd');
    for (let i = 0; i < 2; i++) routers.push(mesh.netns(`r${i}`));
    for (let i = 0; i < 2; i++) {
      await mesh.start(i, config(i));
      const leased = () => sh('ip', ['-n', routers[i]!, 'addr', 'show', 'dev', 'lo']).stdout.includes(` 172.16.${i}.0/`);
      expect(await until(leased, 10_000)).toBe(true);
    }
    for (let i = 0; i < 2; i++) {
      clients.push(mesh.netns(`c${i}`));
      connect(i, clients[i]!, `vd-${i}`);
    }
  }, 120_000);

  afterAll(async () => {
    await mesh?.teardown();
    for (const s of spire) await s.close();
    for (const ns of members) expect(existsSync(`/etc/netns/${ns}`)).toBe(false);
  });

  it('gives each member the endpoint as DNS server with the service as search domain', () => {
    for (const [i, ns] of clients.entries()) {
      const conf = readFileSync(`/etc/netns/${ns}/resolv.conf`, 'utf8');
      expect(conf).toMatch(/^nameserver 127\.0\.0\.1$/m);
      expect(conf).toMatch(new RegExp(`^search .*\\b${SERVICE}\\b`, 'm'));
      const st = mesh.hosts[i]!.agent!.cliJson(['status']);
      const ep = st.endpoints.find((e: any) => e.name === `vl3d-${mesh.hosts[i]!.name}`);
      expect(ep?.vl3?.addresses).toEqual([`172.16.${i}.0/32`]);
      expect(ep?.vl3?.names).toEqual([`${ns}.${SERVICE}`]);
    }
  });

  it('a member resolves and pings a member on the other host by name, and names it by address (PTR)', async () => {
    const [a, b] = clients as [string, string];
    const name = `${b}.${SERVICE}`;
    // the mesh between the endpoints may still be forming
    expect(await until(() => getent(a, name)[0] === addr(b), 10_000, 200)).toBe(true);
    expect(getent(b, `${a}.${SERVICE}`)[0]).toBe(addr(a));
    // the bare name through the search domain
    expect(getent(a, b)[0]).toBe(addr(b));
    const r = sh('ip', ['netns', 'exec', a, 'ping', '-c', '1', '-W', '2', name]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(getent(a, addr(b))[1]).toBe(name);
    expect(getent(b, addr(a))[1]).toBe(`${a}.${SERVICE}`);
    // a name nobody has: not found, quickly
    const t0 = Date.now();
    expect(getent(a, `nobody.${SERVICE}`)).toEqual([]);
    expect(Date.now() - t0).toBeLessThan(4_000);
  });

  it('counts the members and the DNS answers in the metrics', () => {
    const metrics = sh('ip', ['netns', 'exec', mesh.hosts[0]!.netns, 'curl', '-sf', 'http://127.0.0.1:9464/metrics']);
    expect(metrics.code, metrics.stderr).toBe(0);
    expect(metrics.stdout).toMatch(new RegExp(`^nsm_agent_vl3_members\\{endpoint="vl3d-${mesh.hosts[0]!.name}"\\} 1$`, 'm'));
    // the test above resolved names through this host's client resolver and its endpoint
    for (const server of ['resolver', 'vl3']) {
      const m = new RegExp(`^nsm_agent_dns_answers_total\\{server="${server}",rcode="NOERROR"\\} (\\d+)$`, 'm').exec(metrics.stdout);
      expect(Number(m?.[1] ?? 0), server).toBeGreaterThan(0);
    }
  });

  it('a name appears within 1 s of a join and is gone within 1 s of a leave, on the other host', async () => {
    const joiner = mesh.netns('j');
    const name = `${joiner}.${SERVICE}`;
    const watcher = clients[1]!;
    connect(0, joiner, 'vd-join');
    const joined = Date.now();
    expect(await until(() => getent(watcher, name)[0] === addr(joiner), 1_000, 50)).toBe(true);
    console.log(`name resolved on the other host ${Date.now() - joined} ms after connect returned`);
    const r = mesh.hosts[0]!.agent!.cli(['disconnect', 'vd-join']);
    expect(r.code, r.stderr).toBe(0);
    const left = Date.now();
    expect(await until(() => getent(watcher, name).length === 0, 1_000, 50)).toBe(true);
    console.log(`name gone on the other host ${Date.now() - left} ms after disconnect returned`);
  });

  it('malformed packets to the endpoint DNS port leave it serving', () => {
    const [a, b] = clients as [string, string];
    const server = '172.16.0.0';
    const py = `
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
bad = [b'', b'\\x00', b'\\x12\\x34\\x01\\x00\\x00\\x01', b'\\xff' * 12, b'\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\xc0\\x0c\\x00\\x01\\x00\\x01',
       b'\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00' + b'\\x3f' + b'a' * 10, b'\\x12\\x34\\x01\\x00' + b'\\x00' * 8 + b'\\x01' * 3000]
for m in bad: s.sendto(m, ('${server}', 53))
t = socket.create_connection(('${server}', 53), timeout=2); t.sendall(b'\\x00\\x05abcde\\xff\\xff' + b'x' * 100); t.close()
t = socket.create_connection(('${server}', 53), timeout=2); t.sendall(b'\\x00'); t.close()
qn = b''.join(bytes([len(p)]) + p.encode() for p in '${a}.${SERVICE}'.split('.')) + b'\\0'
s.sendto(struct.pack('>HHHHHH', 0x4242, 0, 1, 0, 0, 0) + qn + struct.pack('>HH', 1, 1), ('${server}', 53))
while True:
    d = s.recv(4096)
    if d[:2] == b'\\x42\\x42': break
print(d[3] & 15, struct.unpack('>H', d[6:8])[0])
qb = b''.join(bytes([len(p)]) + p.encode() for p in '${b}.${SERVICE}'.split('.')) + b'\\0'
m = struct.pack('>HHHHHH', 0x4343, 0x100, 1, 0, 0, 0) + qb + struct.pack('>HH', 1, 1)
t = socket.create_connection(('${server}', 53), timeout=3); t.sendall(struct.pack('>H', len(m)) + m)
d = b''
while len(d) < 2 or len(d) < 2 + struct.unpack('>H', d[:2])[0]: d += t.recv(4096)
print(d[3 + 2] & 15, struct.unpack('>H', d[8:10])[0])
`;
    const r = sh('ip', ['netns', 'exec', b, 'python3', '-c', py]);
    expect(r.code, r.stderr).toBe(0);
    // UDP without RD: host-a's own member from its records; TCP with RD: host-b's member,
    // which host-a asks of its peer
    expect(r.stdout.trim().split('\n')).toEqual(['0 1', '0 1']);
    expect(getent(b, `${a}.${SERVICE}`)[0]).toBe(addr(a));
    expect(mesh.hosts[0]!.agent!.cli(['status']).code).toBe(0);
  });

  it('after its agent is killed and restarted, the members of a host are named again', async () => {
    const [a, b] = clients as [string, string];
    const h = mesh.hosts[1]!;
    const dir = h.agent!.dir;
    await h.agent!.stop('SIGKILL', true);
    await mesh.start(1, config(1), { dir });
    const t0 = Date.now();
    expect(await until(() => getent(a, `${b}.${SERVICE}`)[0] === addr(b) && getent(b, `${a}.${SERVICE}`)[0] === addr(a), 15_000, 100)).toBe(true);
    console.log(`names served again ${Date.now() - t0} ms after the restarted agent was up`);
  });
});
