// vL3: one network across hosts. H hosts (namespaces on a bridge), each running `nsm-agent run`
// with a vL3 endpoint of one service (its router in a namespace); host-a also serves the registry
// and vl3-ipam (172.16.0.0/16, a /24 per endpoint). H-1 hosts start, C clients join on each
// (NSM Request on the agent's unix socket, timed to its answer), then the last host joins:
//   - client join: the Request's latency, p50 and p99 over every client;
//   - host join: from the last agent's start (and from its READY) until a client of every
//     other host reaches a client of the new host (1 ms echoes, test/harness/probe.mjs);
//   - all pairs: every client pings every other client and every endpoint address (checked,
//     and timed as a whole);
//   - TCP throughput (iperf3) between clients of two hosts through the vL3 (client veth, router,
//     WireGuard, router, veth) against a hand-made WireGuard mesh with routes between the same
//     two client namespaces (a veth from each client namespace to its host namespace, forwarding
//     on, wireguard-go between the hosts, routes), and against a hand-made wireguard-go tunnel
//     straight between them (bench/dataplane.mjs handWireguard); rounds interleaved;
//   - each agent's RSS and CPU while idle, per member it serves.
//
// Usage (root): npm run build && node bench/vl3.mjs [--hosts 5] [--clients 20] [--seconds 3] [--rounds 3]
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { ROOT, ip, run, sleep } from '../test/harness/exec.mjs';
import { stopPid } from '../test/harness/proc.mjs';
import { NsmClient, kernelRequest } from '../test/harness/clients.mjs';
import { iperfThroughput } from '../test/harness/traffic.mjs';
import { args, TAG, summary, ms, f1, mib, table, machine, versions, writeSection, date, mono, median, rssKiB, cpuMs } from './lib.mjs';
import { main } from './scope.mjs';
import { handWireguard, startWireguardGo } from './dataplane.mjs';

const opt = args();
const HOSTS = Number(opt.hosts ?? 5);
const CLIENTS = Number(opt.clients ?? 20);
const SECONDS = Number(opt.seconds ?? 3);
const ROUNDS = Number(opt.rounds ?? 3);
const P = `nsmv${TAG}`;
const SERVICE = 'bench-vl3';
const require = createRequire(import.meta.url);

/**
 * What an operator would build by hand for the same two members: a veth from each client
 * namespace to its host namespace, forwarding on in the hosts, wireguard-go between the hosts
 * (MTU 1440, as the vL3's), and routes. Returns the address of the second member.
 */
async function handMesh(scope, dir, hosts, members) {
  const { generateKeyPair } = require(path.join(ROOT, 'dist/mechanisms/wireguard/keys.js'));
  const keys = [generateKeyPair(), generateKeyPair()];
  const procs = [];
  const ends = hosts.map((h, i) => ({ h, ns: members[i], dev: `${P}hm${i}`, port: 53011 + i, net: `172.30.${i + 1}` }));
  for (const e of ends) {
    procs.push(await startWireguardGo(scope, e.h.netns, e.dev));
  }
  for (const [i, e] of ends.entries()) {
    const other = ends[1 - i];
    const keyFile = path.join(dir, `${e.dev}.key`);
    writeFileSync(keyFile, keys[i].privateKey, { mode: 0o600 });
    await run('ip', ['netns', 'exec', e.h.netns, 'wg', 'set', e.dev, 'private-key', keyFile, 'listen-port', String(e.port), 'peer', keys[1 - i].publicKey, 'endpoint', `${other.h.ip}:${other.port}`, 'allowed-ips', '172.30.0.0/16', 'persistent-keepalive', '10']);
    await ip(['link', 'add', `${P}hv${i}`, 'netns', e.h.netns, 'mtu', '1440', 'type', 'veth', 'peer', 'name', 'hm0', 'netns', e.ns, 'mtu', '1440']);
    await ip(['-n', e.h.netns, '-batch', '-'], `link set ${e.dev} mtu 1440 up\nlink set ${P}hv${i} up\naddr add ${e.net}.1/24 dev ${P}hv${i}\nroute add ${other.net}.0/24 dev ${e.dev}\n`);
    await ip(['-n', e.ns, '-batch', '-'], `addr add ${e.net}.2/24 dev hm0\nlink set hm0 up\nroute add 172.30.0.0/16 via ${e.net}.1\n`);
    await run('ip', ['netns', 'exec', e.h.netns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  }
  return {
    addr: `${ends[1].net}.2`,
    remove: async () => {
      for (const p of procs) await stopPid(p);
      for (const [i, e] of ends.entries()) await ip(['-n', e.h.netns, 'link', 'del', `${P}hv${i}`]).catch(() => {});
    },
  };
}

main(async (scope) => {
  const dir = scope.dir('nsmv-');
  const mesh = await scope.hosts(HOSTS, P, 219);
  const identity = { source: 'dev', dev: { caDir: path.join(dir, 'ca'), allowNonLoopback: true } };
  const a = mesh.hosts[0];
  const routers = mesh.hosts.map((_, i) => mesh.netns(`r${i}`));
  const agents = [];
  const startHost = async (i) => {
    const h = mesh.hosts[i];
    const agent = await scope.agent({
      dir,
      name: h.name,
      netns: h.netns,
      config: {
        identity,
        listen: { tcp: `${h.ip}:5001` },
        registry: i === 0 ? { url: 'embedded', listen: `${h.ip}:5002` } : { url: `tcp://${a.ip}:5002` },
        ...(i === 0 ? { vl3ipam: { listen: `${a.ip}:5006`, prefix: '172.16.0.0/16', clientPrefixLength: 24 } } : {}),
        endpoints: [{ name: `vl3-${h.name}`, services: [SERVICE], vl3: { ipam: [`tcp://${a.ip}:5006`] }, netns: routers[i] }],
      },
    });
    agents[i] = agent;
    return agent;
  };

  /** clients[i]: { ns, addr } of host i. */
  const clients = [];
  const joins = [];
  const join = async (i) => {
    const c = new NsmClient(agents[i].socket, { timeoutMs: 30_000 });
    scope.defer(() => c.dispose());
    clients[i] = [];
    for (let k = 0; k < CLIENTS; k++) {
      const ns = mesh.netns(`c${i}x${k}`);
      const t0 = mono();
      const conn = await c.request(kernelRequest(`${mesh.hosts[i].name}-${k}`, SERVICE, ns, 'nsm-1'));
      joins.push(mono() - t0);
      clients[i].push({ ns, addr: conn.context.ip_context.src_ip_addrs[0].split('/')[0] });
    }
  };

  for (let i = 0; i < HOSTS - 1; i++) await startHost(i);
  for (let i = 0; i < HOSTS - 1; i++) await join(i);

  // One prober per host (in its first client) for the host join.
  const probers = [];
  for (let i = 0; i < HOSTS - 1; i++) probers.push(await scope.prober(clients[i][0].ns));
  const last = HOSTS - 1;
  const tStart = mono();
  await startHost(last);
  const tReady = mono();
  // The new host's first client, then every other host reaches it.
  const c = new NsmClient(agents[last].socket, { timeoutMs: 30_000 });
  scope.defer(() => c.dispose());
  const ns = mesh.netns(`c${last}x0`);
  const t0 = mono();
  const conn = await c.request(kernelRequest(`${mesh.hosts[last].name}-0`, SERVICE, ns, 'nsm-1'));
  joins.push(mono() - t0);
  const target = conn.context.ip_context.src_ip_addrs[0].split('/')[0];
  const reached = await Promise.all(probers.map((p) => p.ping(target, 20_000)));
  const tReach = Math.max(...reached);
  clients[last] = [{ ns, addr: target }];
  for (let k = 1; k < CLIENTS; k++) {
    const nsk = mesh.netns(`c${last}x${k}`);
    const tk = mono();
    const ck = await c.request(kernelRequest(`${mesh.hosts[last].name}-${k}`, SERVICE, nsk, 'nsm-1'));
    joins.push(mono() - tk);
    clients[last].push({ ns: nsk, addr: ck.context.ip_context.src_ip_addrs[0].split('/')[0] });
  }
  for (const p of probers) await p.stop();

  // All pairs, and every endpoint address, one prober per source in turn.
  const all = clients.flat();
  const endpoints = mesh.hosts.map((_, i) => `172.16.${i}.0`);
  let failures = 0;
  let checked = 0;
  const tAll = mono();
  // One host's clients at a time per host, the hosts at once.
  await Promise.all(
    clients.map(async (list) => {
      for (const from of list) {
        const p = await scope.prober(from.ns);
        for (const to of [...all.filter((x) => x !== from).map((x) => x.addr), ...endpoints]) {
          checked++;
          await p.ping(to, 2_000).catch(() => failures++);
        }
        await p.stop();
      }
    }),
  );
  const allPairsMs = mono() - tAll;
  if (failures) throw new Error(`${failures} of ${checked} pairs unreachable`);

  // Idle figures per agent.
  await sleep(1000);
  const cpu0 = agents.map((ag) => cpuMs(ag.pid));
  await sleep(5000);
  const cpu = agents.map((ag, i) => (cpuMs(ag.pid) - cpu0[i]) / 5000);
  const rss = agents.map((ag) => rssKiB(ag.pid));

  // Throughput: host-b's first client to host-c's first client, vL3 against a hand-made tunnel.
  const [x, y] = [clients[1][0], clients[2][0]];
  const hand = await handWireguard(scope, dir, { hosts: [mesh.hosts[1], mesh.hosts[2]] }, x.ns, y.ns);
  const routed = await handMesh(scope, dir, [mesh.hosts[1], mesh.hosts[2]], [x.ns, y.ns]);
  const vl3Bps = [];
  const handBps = [];
  const meshBps = [];
  const paths = [
    { addr: y.addr, out: vl3Bps },
    { addr: routed.addr, out: meshBps },
    { addr: hand.addr, out: handBps },
  ];
  // The paths take turns within each round, the order rotated round by round.
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < paths.length; k++) {
      const p = paths[(r + k) % paths.length];
      p.out.push(await iperfThroughput(x.ns, y.ns, p.addr, SECONDS));
    }
  }
  await routed.remove();
  await hand.remove();

  const j = summary(joins);
  const gbit = (b) => (b / 1e9).toFixed(2);
  const members = all.length;
  const body = [
    `### vL3 (${date()})`,
    '',
    `\`node bench/vl3.mjs --hosts ${HOSTS} --clients ${CLIENTS} --seconds ${SECONDS} --rounds ${ROUNDS}\`: ${HOSTS} hosts (namespaces on a bridge), each with its own agent and vL3 endpoint (host-a also serves the registry and vl3-ipam), ${CLIENTS} client namespaces per host. ${machine()}; ${await versions(['wireguard-go', 'iperf3'])}.`,
    '',
    table(
      ['what', 'figure', 'target'],
      [
        ['client join (NSM Request to its answer), p50 / p99', `${ms(j.p50)} / ${ms(j.p99)} ms (n=${j.n})`, 'p50 < 10 ms'],
        ['host join: agent start to READY', `${ms(tReady - tStart)} ms`, ''],
        ['host join: READY to reached from every other host', `${ms(tReach - tReady)} ms`, '< 1 s'],
        ['all pairs checked (clients to clients and endpoints)', `${checked} pairs, 0 unreachable, ${f1(allPairsMs / 1000)} s`, 'all'],
        ['TCP, client to client on two hosts: vL3 / hand-made WireGuard mesh with routes, median', `${gbit(median(vl3Bps))} / ${gbit(median(meshBps))} Gbit/s = ${(median(vl3Bps) / median(meshBps)).toFixed(2)}x`, '>= 0.9x'],
        ['TCP, the same: vL3 / a wireguard-go tunnel straight between the two members, median', `${gbit(median(vl3Bps))} / ${gbit(median(handBps))} Gbit/s = ${(median(vl3Bps) / median(handBps)).toFixed(2)}x`, ''],
        ['agent RSS, idle (max over agents) / per member', `${mib(Math.max(...rss))} MiB / ${f1(Math.max(...rss) / (members / HOSTS))} KiB`, ''],
        ['agent CPU, idle (max over agents) / per member', `${(100 * Math.max(...cpu)).toFixed(2)} % / ${(100 * Math.max(...cpu) / (members / HOSTS)).toFixed(3)} %`, ''],
      ],
    ),
    '',
    'The hand-made mesh is what an operator would build for the same two members: a veth from each client namespace to its host namespace, forwarding on, wireguard-go between the hosts (MTU 1440 as the vL3, each process in a session of its own as under systemd, as the agent runs its own), routes. The straight tunnel is one wireguard-go device per side moved into the two client namespaces (as bench/dataplane.mjs builds it): no router hop at all.',
  ].join('\n');
  console.log(body);
  writeSection('vl3', body);
});
