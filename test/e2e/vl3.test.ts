/**
 * End to end: one vL3 network across hosts (namespaces on one bridge, each with its agent).
 * host-a serves the registry and vl3-ipam (172.16.0.0/16, a /24 per endpoint); host-a, host-b
 * and host-c each host a vL3 endpoint of `vl3-app` with its router in a namespace, and two
 * client namespaces each connect to `vl3-app` through their host's agent. Every client reaches
 * every other client and every endpoint, and resolves each by name (`<namespace>.vl3-app`,
 * and back by address); host-d joins and leaves; agents restart under traffic.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildHosts, type Mesh } from '../harness/hosts.mjs';
import { isRoot, sh, sleep, until } from '../harness/exec.mjs';
import { globalAddrs, ipCounter, links, ping, unreachable } from '../harness/netns.mjs';
import { startPinger } from '../harness/traffic.mjs';
import { FakeWorkloadApi } from '../helpers/spire/workload-api';

const run = isRoot ? describe : describe.skip;
/** The addresses a client's nsm-1 got, IPv4 first. */
const clientAddrs = (netns: string) => globalAddrs(netns, 'nsm-1');
const SERVICE = 'vl3-app';

/** Routes of a namespace as `ip -j route` lists them (IPv4 and IPv6). */
function routes(netns: string): string[] {
  const out: string[] = [];
  for (const fam of ['-4', '-6']) {
    const r = sh('ip', [fam, '-n', netns, '-j', 'route', 'show']);
    if (r.code === 0) out.push(...JSON.parse(r.stdout).map((x: any) => `${x.dst} ${x.gateway ?? ''} ${x.dev}`));
  }
  return out;
}

run('vL3: one L3 network across hosts', () => {
  let mesh: Mesh;
  const spire: FakeWorkloadApi[] = [];
  const identity = (i: number) => ({ source: 'spiffe', socket: spire[i]!.address });
  const configs: Record<string, unknown>[] = [];
  /** Router namespace of each host's endpoint, and the client namespaces per host. */
  const routers: string[] = [];
  const clients: string[][] = [];
  const ipamURL = () => `tcp://${mesh.hosts[0]!.ip}:5006`;
  const registryURL = () => `tcp://${mesh.hosts[0]!.ip}:5002`;
  // Default token lifetime: a restart slowed by a loaded machine must not outlast the connections' expiry.
  const common = {};

  const config = (i: number): Record<string, unknown> => {
    const h = mesh.hosts[i]!;
    return {
      ...common,
      identity: identity(i),
      listen: { tcp: `${h.ip}:5001` },
      registry: i === 0 ? { url: 'embedded', listen: `${h.ip}:5002` } : { url: registryURL() },
      ...(i === 0 ? { vl3ipam: { listen: `${h.ip}:5006`, prefix: '172.16.0.0/16', clientPrefixLength: 24 } } : {}),
      wireguard: { spares: 1 },
      endpoints: [{ name: `vl3-${h.name}`, services: [SERVICE], vl3: { ipam: [ipamURL()] }, netns: routers[i] }],
    };
  };

  async function startHost(i: number, opts: { dir?: string } = {}): Promise<void> {
    configs[i] = config(i);
    await mesh.start(i, configs[i]!, opts);
  }

  function connectClients(i: number, n = 2): void {
    const h = mesh.hosts[i]!;
    clients[i] = [];
    for (let k = 0; k < n; k++) {
      const ns = mesh.netns(`c${i}${k}`);
      clients[i]!.push(ns);
      const r = h.agent!.cli(['connect', `kernel://${SERVICE}/nsm-1`, '--netns', ns, '--id', `c-${h.name}-${k}`]);
      expect(r.code, r.stderr).toBe(0);
    }
  }

  const allClients = () => clients.flat();
  /** The endpoints' own addresses, of the hosts that have clients (started). */
  const endpointAddrs = () => clients.map((_, i) => `172.16.${i}.0`);

  beforeAll(async () => {
    const first = await FakeWorkloadApi.start({ trustDomains: ['example.org'], entries: [{ id: 'spiffe://example.org/host-a', ttlMs: 120_000 }] });
    spire.push(first);
    for (const h of ['host-b', 'host-c', 'host-d']) {
      spire.push(await FakeWorkloadApi.start({ sameCasAs: first, entries: [{ id: `spiffe://example.org/${h}`, ttlMs: 120_000 }] }));
    }
    mesh = await buildHosts(4, 'v3');
    for (let i = 0; i < 4; i++) routers.push(mesh.netns(`r${i}`));
    // One at a time: each endpoint's lease comes in order, so host-a has 172.16.0.0/24 and so on.
    for (let i = 0; i < 3; i++) {
      await startHost(i);
      expect(await until(() => routes(routers[i]!).some((r) => r.startsWith(`172.16.${i}.0 `)) || addrOnLo(routers[i]!, `172.16.${i}.0`), 10_000)).toBe(true);
    }
    for (let i = 0; i < 3; i++) connectClients(i);
  }, 120_000);

  afterAll(async () => {
    await mesh?.teardown();
    for (const s of spire) await s.close();
  });

  function addrOnLo(ns: string, ip: string): boolean {
    return sh('ip', ['-n', ns, 'addr', 'show', 'dev', 'lo']).stdout.includes(` ${ip}/`);
  }

  it('gives every client a unique address of its endpoint prefix and reaches every member', async () => {
    const addrs = allClients().map((ns) => clientAddrs(ns));
    for (const [i, list] of clients.entries()) {
      for (const ns of list) expect(clientAddrs(ns)[0]).toMatch(new RegExp(`^172\\.16\\.${i}\\.\\d+$`));
    }
    expect(new Set(addrs.flat()).size).toBe(addrs.length);
    // the endpoint's own address and the routes upstream gives: own /32, prefix and network via it
    const r = routes(clients[1]![0]!);
    expect(r).toEqual(expect.arrayContaining(['172.16.1.0/24 172.16.1.0 nsm-1', '172.16.0.0/16 172.16.1.0 nsm-1']));
    // Every client to every other client and to every endpoint (the mesh between hosts).
    const pairs: [string, string][] = [];
    for (const from of allClients()) {
      for (const to of allClients()) if (to !== from) pairs.push([from, clientAddrs(to)[0]!]);
      for (const ep of endpointAddrs()) pairs.push([from, ep]);
    }
    let failed = await unreachable(pairs);
    // The mesh between endpoints may still be forming for the last host started.
    if (failed.length) {
      await sleep(2000);
      failed = await unreachable(pairs);
    }
    expect(failed).toEqual([]);
  });

  it('names every member: each resolves every other by <namespace>.<service>, and back by address', async () => {
    /** `getent hosts KEY` in `ns` through the agent's resolver: [address, name], or []. */
    const getent = (ns: string, key: string) => {
      const r = sh('ip', ['netns', 'exec', ns, 'getent', 'hosts', key]);
      return r.code === 0 ? r.stdout.trim().split(/\s+/).slice(0, 2) : [];
    };
    const wrong: string[] = [];
    for (const from of allClients()) {
      for (const to of allClients()) {
        if (to === from) continue;
        const ip = clientAddrs(to)[0]!;
        if (getent(from, `${to}.${SERVICE}`)[0] !== ip) wrong.push(`${from} -> ${to}.${SERVICE}`);
        if (getent(from, ip)[1] !== `${to}.${SERVICE}`) wrong.push(`${from} -> PTR ${ip}`);
      }
    }
    expect(wrong).toEqual([]);
    const [from, to] = [clients[1]![0]!, clients[2]![1]!];
    const r = sh('ip', ['netns', 'exec', from, 'ping', '-c', '1', '-W', '2', `${to}.${SERVICE}`]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });

  it('sends full-size packets between hosts without IP fragments on the underlay', () => {
    // A WireGuard device that pads by a wrong MTU makes full-size packets exceed the underlay.
    const [from, to] = [clients[1]![0]!, clients[2]![0]!];
    const mtu = links(from).find((l) => l.ifname === 'nsm-1')!.mtu;
    const fragments = () => ipCounter(mesh.hosts[1]!.netns, 'FragCreates');
    const before = fragments();
    const r = sh('ip', ['netns', 'exec', from, 'ping', '-c', '3', '-i', '0.2', '-W', '2', '-M', 'do', '-s', String(mtu - 28), clientAddrs(to)[0]!]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(fragments() - before).toBe(0);
  });

  it('a fourth host joins without a change on the others, and is reached by all', async () => {
    await startHost(3);
    const t0 = Date.now();
    connectClients(3, 1);
    const d = clientAddrs(clients[3]![0]!)[0]!;
    expect(d).toMatch(/^172\.16\.3\.\d+$/);
    // reached from every other client
    const reachable = await until(async () => (await unreachable(allClients().filter((c) => c !== clients[3]![0]).map((c) => [c, d]))).length === 0, 10_000, 100);
    expect(reachable).toBe(true);
    console.log(`host-d reached by all ${allClients().length - 1} clients ${Date.now() - t0} ms after its client connected`);
    // and it reaches everyone
    expect(await unreachable(allClients().filter((c) => c !== clients[3]![0]).map((c) => [clients[3]![0]!, clientAddrs(c)[0]!]))).toEqual([]);
  });

  it('an endpoint host agent killed and restarted: no echo lost between the others, its clients back', async () => {
    const a0 = clients[0]![0]!;
    const c0 = clientAddrs(clients[2]![0]!)[0]!;
    const b0 = clientAddrs(clients[1]![0]!)[0]!;
    const between = startPinger(a0, c0, 20);
    const toB = startPinger(a0, b0, 20);
    await sleep(500);
    const h = mesh.hosts[1]!;
    const dir = h.agent!.dir;
    const t0 = Date.now();
    await h.agent!.stop('SIGKILL', true);
    await sleep(300);
    const lines: string[] = [];
    // Its log lines, with the time since the kill, are shown if echoes were lost.
    await mesh.start(1, configs[1]!, { dir, onLine: (l) => lines.push(`${Date.now() - t0} ${l}`) });
    await sleep(2000);
    const others = await between.stop();
    const b = await toB.stop(t0);
    if (b.lost) console.log(`recovered at ${b.recoveryMs} after the kill\n${lines.join('\n')}`);
    console.log(`host-b agent killed and restarted: a->c ${JSON.stringify(others)}, a->b ${JSON.stringify(b)}`);
    expect(others.lost).toBe(0);
    // host-b's data plane stays in the kernel while its agent is down
    expect(b.lost).toBe(0);
    expect(clientAddrs(clients[1]![0]!)[0]).toBe(b0);
  });

  it('vl3-ipam restarted (host-a agent): endpoints get their prefixes back, no client address changes', async () => {
    const before = allClients().map((ns) => clientAddrs(ns)[0]);
    const h = mesh.hosts[0]!;
    const dir = h.agent!.dir;
    await h.agent!.stop('SIGKILL', true);
    await sleep(300);
    await mesh.start(0, configs[0]!, { dir });
    await sleep(3000);
    for (let i = 0; i < 4; i++) {
      const st = mesh.hosts[i]!.agent!.cliJson(['status']);
      const ep = st.endpoints.find((e: any) => e.name === `vl3-${mesh.hosts[i]!.name}`);
      expect(ep?.vl3?.prefixes).toEqual([`172.16.${i}.0/24`]);
    }
    expect(allClients().map((ns) => clientAddrs(ns)[0])).toEqual(before);
    expect(await unreachable([[clients[0]![0]!, clientAddrs(clients[3]![0]!)[0]!], [clients[3]![0]!, clientAddrs(clients[2]![1]!)[0]!]])).toEqual([]);
  });

  it('a host removed (agent stopped with cleanup): its routes are gone everywhere', async () => {
    const h = mesh.hosts[3]!;
    await h.agent!.stop('SIGTERM');
    h.agent = undefined;
    const gone = () => [0, 1, 2].every((i) => !routes(routers[i]!).some((r) => r.startsWith('172.16.3.0/24')));
    expect(await until(gone, 10_000, 100)).toBe(true);
    // nothing left in its router namespace but loopback
    const left = JSON.parse(sh('ip', ['-n', routers[3]!, '-j', 'link', 'show']).stdout).map((l: any) => l.ifname);
    expect(left).toEqual(['lo']);
    expect(ping(clients[0]![0]!, clientAddrs(clients[2]![1]!)[0]!, 1)).toBe(true);
  });
});
