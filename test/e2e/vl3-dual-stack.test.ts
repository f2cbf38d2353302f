/**
 * End to end: a dual-stack vL3 network (upstream's features/dual-stack/vl3-dual-stack): host-a
 * serves vl3-ipam for IPv4 (172.16.0.0/16, /24 leases) and host-b for IPv6 (2001:db8::/64, /112
 * leases, as upstream's vl3-ipv6 example); both host a vL3 endpoint leasing from both, and two
 * clients each. Every client reaches every other client and every endpoint over IPv4 and IPv6.
 * Bad vl3-ipam settings and a vl3-ipam that is down are seen too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildHosts, type Mesh } from '../harness/hosts.mjs';
import { isRoot, sh, until } from '../harness/exec.mjs';
import { startAgent } from '../harness/agent.mjs';
import { globalAddrs, unreachable } from '../harness/netns.mjs';
import { FakeWorkloadApi } from '../helpers/spire/workload-api';

const run = isRoot ? describe : describe.skip;
/** The addresses a client's nsm-1 got, IPv4 first. */
const clientAddrs = (netns: string) => globalAddrs(netns, 'nsm-1');
const SERVICE = 'vl3-ds';

run('vL3 dual stack (IPv4 and IPv6 vl3-ipam)', () => {
  let mesh: Mesh;
  const spire: FakeWorkloadApi[] = [];
  const identity = (i: number) => ({ source: 'spiffe', socket: spire[i]!.address });
  const clients: string[][] = [];

  beforeAll(async () => {
    const first = await FakeWorkloadApi.start({ trustDomains: ['example.org'], entries: [{ id: 'spiffe://example.org/host-a', ttlMs: 120_000 }] });
    spire.push(first, await FakeWorkloadApi.start({ sameCasAs: first, entries: [{ id: 'spiffe://example.org/host-b', ttlMs: 120_000 }] }));
    mesh = await buildHosts(2, 'v6');
    const [a, b] = mesh.hosts;
    const ipam = [`tcp://${a!.ip}:5006`, `tcp://${b!.ip}:5006`];
    const routers = [mesh.netns('r0'), mesh.netns('r1')];
    await mesh.start(0, {
      identity: identity(0),
      listen: { tcp: `${a!.ip}:5001` },
      registry: { url: 'embedded', listen: `${a!.ip}:5002` },
      vl3ipam: { listen: `${a!.ip}:5006`, prefix: '172.16.0.0/16', clientPrefixLength: 24 },
      endpoints: [{ name: 'vl3-ds-a', services: [SERVICE], vl3: { ipam }, netns: routers[0] }],
    });
    await mesh.start(1, {
      identity: identity(1),
      listen: { tcp: `${b!.ip}:5001` },
      registry: { url: `tcp://${a!.ip}:5002` },
      vl3ipam: { listen: `${b!.ip}:5006`, prefix: '2001:db8::/64', clientPrefixLength: 112 },
      endpoints: [{ name: 'vl3-ds-b', services: [SERVICE], vl3: { ipam }, netns: routers[1] }],
    });
    for (const [i, h] of mesh.hosts.entries()) {
      clients[i] = [];
      for (let k = 0; k < 2; k++) {
        const ns = mesh.netns(`c${i}${k}`);
        clients[i]!.push(ns);
        // Until both leases are there, requests fail UNAVAILABLE (the pool is initializing).
        const ok = await until(() => h.agent!.cli(['connect', `kernel://${SERVICE}/nsm-1`, '--netns', ns, '--id', `c${i}${k}`]).code === 0, 15_000, 200);
        expect(ok).toBe(true);
      }
    }
  }, 120_000);

  afterAll(async () => {
    await mesh?.teardown();
    for (const s of spire) await s.close();
  });

  it('gives each client one IPv4 and one IPv6 address of its endpoint, and all pairs reach each other both ways', async () => {
    const all = clients.flat();
    for (const ns of all) {
      const [v4, v6] = clientAddrs(ns);
      expect(v4).toMatch(/^172\.16\.\d+\.\d+$/);
      expect(v6).toMatch(/^2001:db8::/);
    }
    const st = mesh.hosts.map((h) => h.agent!.cliJson(['status']).endpoints[0].vl3);
    for (const s of st) {
      expect(s.prefixes).toHaveLength(2);
      expect(s.prefixes[0]).toMatch(/^172\.16\.\d+\.0\/24$/);
      expect(s.prefixes[1]).toMatch(/^2001:db8::(\w+:0)?\/112$/);
    }
    const endpointAddrs = st.flatMap((s: any) => s.addresses.map((a: string) => a.split('/')[0]));
    const pairs: [string, string][] = [];
    for (const from of all) {
      for (const to of all) if (to !== from) for (const a of clientAddrs(to)) pairs.push([from, a]);
      for (const a of endpointAddrs) pairs.push([from, a]);
    }
    let failed = await unreachable(pairs);
    if (failed.length) {
      await new Promise((r) => setTimeout(r, 2000));
      failed = await unreachable(pairs);
    }
    expect(failed).toEqual([]);
  });

  it('refuses bad vl3-ipam settings at start, naming the key', async () => {
    for (const [vl3ipam, key] of [
      [{ listen: '127.0.0.1:5006', prefix: '172.16.0.0/16', clientPrefixLength: 8 }, 'vl3ipam.clientPrefixLength'],
      [{ listen: '127.0.0.1:5006', prefix: '172.16.0.0/33' }, 'vl3ipam.prefix'],
    ] as const) {
      await expect(startAgent({ name: 'bad', vl3ipam }, { readyTimeoutMs: 5_000 })).rejects.toThrow(new RegExp(key.replace('.', '\\.')));
    }
    await expect(
      startAgent({ name: 'bad', endpoints: [{ name: 'x', services: ['s'], vl3: { ipam: ['http://nope'] } }] }, { readyTimeoutMs: 5_000 }),
    ).rejects.toThrow(/endpoints\[0\]\.vl3\.ipam\[0\]/);
    await expect(
      startAgent({ name: 'bad', endpoints: [{ name: 'x', services: ['s'], cidr: '10.0.0.0/24', vl3: { ipam: ['tcp://127.0.0.1:5006'] } }] }, { readyTimeoutMs: 5_000 }),
    ).rejects.toThrow(/remove cidr/);
  });

  it('a vl3-ipam that is down: clients get UNAVAILABLE naming the pool, the agent keeps serving', async () => {
    // In this (the test's) namespace the agent makes its router's namespace itself.
    const name = `vl3-lonely-${process.pid}`;
    const agent = await startAgent({
      name: 'lonely',
      endpoints: [{ name, services: ['vl3-lonely'], vl3: { ipam: ['tcp://127.0.0.1:1'] } }],
    });
    try {
      expect(sh('ip', ['netns', 'list']).stdout).toContain(`nsm-vl3-${name}`);
      const ns = mesh.netns('cl');
      const r = agent.cli(['connect', 'kernel://vl3-lonely/nsm-1', '--netns', ns]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/vL3 prefix pool is initializing/);
      expect(agent.cli(['status']).code).toBe(0);
      expect(agent.cliJson(['status']).endpoints[0].vl3.prefixes).toEqual(['']);
    } finally {
      await agent.stop('SIGTERM');
    }
    // stopped with --cleanup-on-exit: the router's namespace is gone
    expect(sh('ip', ['netns', 'list']).stdout).not.toContain(`nsm-vl3-${name}`);
  });
});
