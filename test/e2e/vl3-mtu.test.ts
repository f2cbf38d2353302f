/**
 * End to end: the MTU of a vL3 network follows its narrowest host. host-a (registry, vl3-ipam,
 * a vL3 endpoint) has a client whose nsm-1 carries host-a's WireGuard MTU; host-b joins with a
 * narrower underlay, its endpoint meshes with host-a's, and host-a's endpoint asks its client to
 * refresh (REFRESH_REQUESTED): the client's existing nsm-1 gets host-b's lower MTU. The other
 * way round, a wide host joining a narrow one learns the narrow MTU from its mesh connection's
 * answer and gives it to its own clients.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildHosts, type Mesh } from '../harness/hosts.mjs';
import { isRoot, sh, until } from '../harness/exec.mjs';
import { ping } from '../harness/netns.mjs';
import { FakeWorkloadApi } from '../helpers/spire/workload-api';

const run = isRoot ? describe : describe.skip;
const SERVICE = 'vl3-mtu';
/** WireGuard's IPv4 overhead: an underlay of 1500 gives 1440, one of 1400 gives 1340. */
const WG_OVERHEAD_V4 = 60;
const NARROW_UNDERLAY = 1400;

/** nsm-1 of a namespace: its ifindex, MTU and IPv4 address; undefined while there is none. */
function nsm1(netns: string): { ifindex: number; mtu: number; addr?: string } | undefined {
  const r = sh('ip', ['-n', netns, '-j', 'addr', 'show', 'dev', 'nsm-1']);
  if (r.code !== 0) return undefined;
  const link = JSON.parse(r.stdout)[0];
  if (!link) return undefined;
  return { ifindex: link.ifindex, mtu: link.mtu, addr: (link.addr_info ?? []).find((a: any) => a.family === 'inet')?.local };
}

/** Two hosts, host-a serving the registry and vl3-ipam, each with a vL3 endpoint when started. */
function twoHosts(prefix: string) {
  let mesh: Mesh;
  const spire: FakeWorkloadApi[] = [];
  const routers: string[] = [];

  const config = (i: number): Record<string, unknown> => {
    const h = mesh.hosts[i]!;
    const a = mesh.hosts[0]!.ip;
    return {
      identity: { source: 'spiffe', socket: spire[i]!.address },
      listen: { tcp: `${h.ip}:5001` },
      registry: i === 0 ? { url: 'embedded', listen: `${a}:5002` } : { url: `tcp://${a}:5002` },
      ...(i === 0 ? { vl3ipam: { listen: `${a}:5006`, prefix: '172.16.0.0/16', clientPrefixLength: 24 } } : {}),
      wireguard: { spares: 1 },
      endpoints: [{ name: `vl3-${h.name}`, services: [SERVICE], vl3: { ipam: [`tcp://${a}:5006`] }, netns: routers[i] }],
    };
  };

  const connect = (i: number): string => {
    const h = mesh.hosts[i]!;
    const ns = mesh.netns(`mc${i}`);
    const r = h.agent!.cli(['connect', `kernel://${SERVICE}/nsm-1`, '--netns', ns, '--id', `c-${h.name}`]);
    expect(r.code, r.stderr).toBe(0);
    return ns;
  };

  const leased = (i: number) => until(() => sh('ip', ['-n', routers[i]!, 'addr', 'show', 'dev', 'lo']).stdout.includes(` 172.16.${i}.0/`), 10_000);

  beforeAll(async () => {
    const first = await FakeWorkloadApi.start({ trustDomains: ['example.org'], entries: [{ id: 'spiffe://example.org/host-a', ttlMs: 120_000 }] });
    spire.push(first, await FakeWorkloadApi.start({ sameCasAs: first, entries: [{ id: 'spiffe://example.org/host-b', ttlMs: 120_000 }] }));
    mesh = await buildHosts(2, prefix);
    for (let i = 0; i < 2; i++) routers.push(mesh.netns(`mr${i}`));
  }, 60_000);

  afterAll(async () => {
    await mesh?.teardown();
    for (const s of spire) await s.close();
  });

  return {
    narrow: (i: number) => expect(sh('ip', ['-n', mesh.hosts[i]!.netns, 'link', 'set', 'eth0', 'mtu', String(NARROW_UNDERLAY)]).code).toBe(0),
    async start(i: number) {
      await mesh.start(i, config(i));
      expect(await leased(i)).toBe(true);
    },
    connect,
  };
}

const LOWERED = NARROW_UNDERLAY - WG_OVERHEAD_V4;

run('vL3 MTU: a narrower host lowers the MTU of members already connected', () => {
  const t = twoHosts('v3m');

  it('a host with a narrower underlay joins: the first client gets its MTU on the same nsm-1, traffic passes', async () => {
    await t.start(0);
    const a0 = t.connect(0);
    const before = nsm1(a0);
    expect(before?.mtu).toBe(1500 - WG_OVERHEAD_V4);

    t.narrow(1);
    const t0 = Date.now();
    await t.start(1);
    const changed = await until(() => nsm1(a0)?.mtu === LOWERED, 10_000, 100);
    console.log(`host-a's client MTU ${nsm1(a0)?.mtu} ${Date.now() - t0} ms after host-b started`);
    expect(changed).toBe(true);
    expect(nsm1(a0)?.ifindex).toBe(before!.ifindex); // the same vWire, not a reconnect
    expect(nsm1(a0)?.addr).toBe(before!.addr);

    const b0 = t.connect(1);
    expect(nsm1(b0)?.mtu).toBe(LOWERED);
    const bAddr = nsm1(b0)!.addr!;
    expect(await until(() => ping(a0, bAddr, 1), 10_000, 200)).toBe(true);
    expect(ping(a0, '172.16.1.0')).toBe(true);
    expect(ping(b0, before!.addr!)).toBe(true);
    // A full-size packet of the lowered MTU, not fragmented, crosses the narrow underlay.
    const full = sh('ip', ['netns', 'exec', a0, 'ping', '-c', '2', '-W', '2', '-M', 'do', '-s', String(LOWERED - 28), bAddr]);
    expect(full.code, full.stdout + full.stderr).toBe(0);
  });
});

run('vL3 MTU: a host joining a narrower one takes its MTU from the answer of the mesh', () => {
  const t = twoHosts('v3n');

  it('host-b (wide) meshes with host-a (narrow): host-b\'s client gets the narrow MTU', async () => {
    t.narrow(0);
    await t.start(0);
    const a0 = t.connect(0);
    expect(nsm1(a0)?.mtu).toBe(LOWERED);
    await t.start(1);
    const b0 = t.connect(1);
    // host-b's own WireGuard MTU is wider; its mesh connection's answer brings host-a's.
    const lowered = await until(() => nsm1(b0)?.mtu === LOWERED, 10_000, 100);
    console.log(`host-b's client MTU ${nsm1(b0)?.mtu}`);
    expect(lowered).toBe(true);
    const aAddr = nsm1(a0)!.addr!;
    expect(await until(() => ping(b0, aAddr, 1), 10_000, 200)).toBe(true);
    const full = sh('ip', ['netns', 'exec', b0, 'ping', '-c', '2', '-W', '2', '-M', 'do', '-s', String(LOWERED - 28), aAddr]);
    expect(full.code, full.stdout + full.stderr).toBe(0);
  });
});
