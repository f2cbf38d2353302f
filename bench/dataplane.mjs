// Data plane: iperf3 TCP throughput, client side to server side, rounds
// interleaved, between namespaces of two hosts on a bridge (as bench/remote.mjs builds them):
//   - the agent's WireGuard vWire (client namespace -> endpoint namespace, wireguard-go) against a
//     hand-made wireguard-go tunnel between the same two namespaces built the same way (devices
//     made in the host namespaces, moved in, one peer each, MTU 1440);
//   - nebula and tinc (1.0, router mode) tunnels between the two host namespaces (their usual
//     setup: the daemon and its tun device in the host);
//   - the agent's local vWire (veth between two namespaces) against a bare veth pair.
//
// Usage (root): npm run build && node bench/dataplane.mjs [--seconds 3] [--rounds 3]
import { spawn } from 'node:child_process';
import { writeFileSync, mkdirSync, chmodSync, copyFileSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { ROOT, ip, run, sleep } from '../test/harness/exec.mjs';
import { stopPid } from '../test/harness/proc.mjs';
import { BIN } from '../test/harness/agent.mjs';
import { NsmClient, kernelRequest } from '../test/harness/clients.mjs';
import { iperfThroughput as iperf } from '../test/harness/traffic.mjs';
import { args, TAG, median, table, machine, versions, writeSection, date } from './lib.mjs';
import { main } from './scope.mjs';
import { twoAgents, nebulaSetup } from './remote.mjs';

const require = createRequire(import.meta.url);
const opt = args();
const SECONDS = Number(opt.seconds ?? 3);
const ROUNDS = Number(opt.rounds ?? 3);
const P = `nsmd${TAG}`;

/** Waits for wireguard-go's UAPI socket of `dev` (up to 3 s). */
export async function waitSock(dev) {
  const { existsSync } = await import('node:fs');
  for (let t = 0; !existsSync(`/var/run/wireguard/${dev}.sock`); t++) {
    if (t > 300) throw new Error(`wireguard-go ${dev} did not start`);
    await sleep(10);
  }
}

/**
 * A hand-made device's wireguard-go in `netns`, in a session of its own as under systemd (a
 * wg-quick@ unit's) and as the agent starts its own: with the kernel's autogroups
 * (sched_autogroup_enabled), a process sharing the benchmark's session would share its CPU
 * with iperf3's as one group's threads instead of getting a group's share of its own.
 */
export async function startWireguardGo(scope, netns, dev) {
  const p = scope.proc(spawn('ip', ['netns', 'exec', netns, 'wireguard-go', dev], { stdio: 'ignore', detached: true, env: { ...process.env, WG_PROCESS_FOREGROUND: '1' } }));
  await waitSock(dev);
  return p;
}

/** A wireguard-go tunnel by hand between nsc (via host-a) and nse (via host-b), as the agent builds it. */
export async function handWireguard(scope, dir, mesh, nsc, nse) {
  const hosts = mesh.hosts;
  const { generateKeyPair } = require(path.join(ROOT, 'dist/mechanisms/wireguard/keys.js'));
  const keys = [generateKeyPair(), generateKeyPair()];
  const ends = [
    { h: hosts[0], ns: nsc, dev: `${P}wga`, port: 53001, addr: '172.31.0.1', peerAddr: '172.31.0.2', me: 0 },
    { h: hosts[1], ns: nse, dev: `${P}wgb`, port: 53002, addr: '172.31.0.2', peerAddr: '172.31.0.1', me: 1 },
  ];
  const procs = [];
  for (const e of ends) {
    procs.push(await startWireguardGo(scope, e.h.netns, e.dev));
    // The MTU first, in wireguard-go's own namespace: it learns a link's MTU only there, and
    // pads by its default (1420) otherwise, which fragments full-size packets on the underlay.
    await ip(['-n', e.h.netns, 'link', 'set', e.dev, 'mtu', '1440']);
  }
  for (const e of ends) {
    const other = ends[1 - e.me];
    const keyFile = path.join(dir, `${e.dev}.key`);
    writeFileSync(keyFile, keys[e.me].privateKey, { mode: 0o600 });
    await run('wg', ['set', e.dev, 'private-key', keyFile, 'listen-port', String(e.port), 'peer', keys[other.me].publicKey, 'endpoint', `${other.h.ip}:${other.port}`, 'allowed-ips', '0.0.0.0/0', 'persistent-keepalive', '10']);
    await ip(['-n', e.h.netns, 'link', 'set', e.dev, 'netns', e.ns, 'name', 'hw0']);
    await ip(['-n', e.ns, '-batch', '-'], `addr add ${e.addr}/32 dev hw0\nlink set hw0 up\nroute add ${e.peerAddr}/32 dev hw0 scope link\n`);
  }
  return { addr: '172.31.0.2', remove: () => Promise.all(procs.map((p) => stopPid(p))) };
}

async function bareVeth(lc, le) {
  await ip(['link', 'add', 'bv0', 'netns', lc, 'type', 'veth', 'peer', 'name', 'bv1', 'netns', le]);
  await ip(['-n', lc, '-batch', '-'], 'addr add 172.30.0.1/32 dev bv0\nlink set bv0 up\nroute add 172.30.0.2/32 dev bv0 scope link\n');
  await ip(['-n', le, '-batch', '-'], 'addr add 172.30.0.2/32 dev bv1\nlink set bv1 up\nroute add 172.30.0.1/32 dev bv1 scope link\n');
  return { addr: '172.30.0.2', remove: () => ip(['-n', lc, 'link', 'del', 'bv0']) };
}

/** tinc 1.0 in router mode, a ConnectTo b; keys made once. */
async function tincSetup(dir, hosts) {
  const base = path.join(dir, 'tinc');
  const conf = {};
  for (const [i, h] of hosts.entries()) {
    const n = 'ab'[i]; // tinc node names: letters only
    const d = path.join(base, n);
    mkdirSync(path.join(d, 'hosts'), { recursive: true });
    writeFileSync(path.join(d, 'tinc.conf'), `Name = ${n}\nInterface = ${P}t${n}\nDeviceType = tun\nMode = router\nAddressFamily = ipv4\nPort = ${655 + i}\n${i === 0 ? 'ConnectTo = b\n' : ''}`);
    writeFileSync(path.join(d, 'hosts', n), `Address = ${h.ip}\nPort = ${655 + i}\nSubnet = 10.97.0.${i + 1}/32\n`);
    writeFileSync(path.join(d, 'tinc-up'), `#!/bin/sh\nip addr add 10.97.0.${i + 1}/24 dev $INTERFACE\nip link set $INTERFACE up\n`);
    chmodSync(path.join(d, 'tinc-up'), 0o755);
    await run('tincd', ['-c', d, '-K', '2048'], '');
    conf[n] = d;
  }
  copyFileSync(path.join(conf.a, 'hosts', 'a'), path.join(conf.b, 'hosts', 'a'));
  copyFileSync(path.join(conf.b, 'hosts', 'b'), path.join(conf.a, 'hosts', 'b'));
  return conf;
}

if (import.meta.url === `file://${process.argv[1]}`)
  main(async (scope) => {
  const dir = scope.dir('nsmd-');
  const mesh = await scope.hosts(2, P, 226);
  const hosts = mesh.hosts;
  const nsc = mesh.netns('nsc');
  const nse = mesh.netns('nse');
  const lc = mesh.netns('lc');
  const le = mesh.netns('le');
  const { a } = await twoAgents(scope, dir, mesh, { endpoints: [{ name: 'wg-ep', services: ['bench-ip'], cidr: '10.210.0.0/16', netns: nse }] });
  // a local endpoint on host-a's agent for the local vWire
  const YAML = require('yaml');
  const { readFileSync } = await import('node:fs');
  const c = new NsmClient(a.socket, { timeoutMs: 60_000 });
  scope.defer(() => c.dispose());
  const pingA = await scope.prober(hosts[0].netns);
  const neb = await nebulaSetup(dir, mesh);
  const tinc = await tincSetup(dir, hosts);

  // host-a hosts the local endpoint too: restart it with one (a config change, not a reload, for simplicity)
  const aCfg = YAML.parse(readFileSync(a.file, 'utf8'));
  writeFileSync(a.file, YAML.stringify({ ...aCfg, endpoints: [{ name: 'local-ep', services: ['bench-local'], cidr: '10.212.0.0/16', netns: le }] }));
  await run(process.execPath, [BIN, 'reload', '--socket', a.socket]);

  const tp = { agentWg: [], handWg: [], nebula: [], tinc: [], agentLocal: [], bareVeth: [] };
  const paths = {
    async agentWg(r) {
      const w = await c.request(kernelRequest(`tp-wg-${r}`, 'bench-ip', nsc, 'nsm-1'));
      try {
        return await iperf(nsc, nse, w.context.ip_context.dst_ip_addrs[0].split('/')[0], SECONDS);
      } finally {
        await c.close(w);
      }
    },
    async handWg() {
      const h = await handWireguard(scope, dir, mesh, nsc, nse);
      try {
        return await iperf(nsc, nse, h.addr, SECONDS);
      } finally {
        await h.remove();
      }
    },
    async nebula() {
      const procs = ['b', 'a'].map((h) => scope.proc(spawn('ip', ['netns', 'exec', neb.hosts[h].netns, 'nebula', '-config', neb.files[h]], { stdio: 'ignore', detached: true })));
      try {
        await pingA.ping(neb.ips.b, 15_000);
        return await iperf(hosts[0].netns, hosts[1].netns, neb.ips.b, SECONDS);
      } finally {
        for (const p of procs) await stopPid(p);
      }
    },
    async tinc() {
      const procs = [1, 0].map((i) => scope.proc(spawn('ip', ['netns', 'exec', hosts[i].netns, 'tincd', '-c', tinc['ab'[i]], `--pidfile=${tinc['ab'[i]]}/pid`, '-D', '-d0'], { stdio: 'ignore', detached: true })));
      try {
        await pingA.ping('10.97.0.2', 15_000);
        return await iperf(hosts[0].netns, hosts[1].netns, '10.97.0.2', SECONDS);
      } finally {
        for (const p of procs) await stopPid(p);
      }
    },
    async agentLocal(r) {
      const l = await c.request(kernelRequest(`tp-l-${r}`, 'bench-local', lc, 'nsm-2'));
      try {
        return await iperf(lc, le, l.context.ip_context.dst_ip_addrs[0].split('/')[0], SECONDS);
      } finally {
        await c.close(l);
      }
    },
    async bareVeth() {
      const v = await bareVeth(lc, le);
      try {
        return await iperf(lc, le, v.addr, SECONDS);
      } finally {
        await v.remove();
      }
    },
  };
  const names = Object.keys(paths);
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < names.length; k++) {
      const n = names[(r + k) % names.length];
      tp[n].push(await paths[n](r));
    }
  }

  const T = Object.fromEntries(Object.entries(tp).map(([k, v]) => [k, median(v)]));
  const gbit = (x) => (x / 1e9).toFixed(2);
  const body = [
    '## Data plane throughput (issues 3 and 7)',
    '',
    `Command: \`node bench/dataplane.mjs --seconds ${SECONDS} --rounds ${ROUNDS}\` (after \`npm run build\`; part of \`npm run bench\`), ${date()}.`,
    `Machine: ${machine()}, ${await versions(['wireguard-go', 'nebula', 'tinc', 'iperf3'])}.`,
    '',
    `iperf3 TCP, ${SECONDS} s, one stream, median of ${ROUNDS} rounds; the paths take turns within each round (order rotated).`,
    'Two hosts (namespaces on a bridge) running `nsm-agent run`. The agent and hand-made WireGuard rows go from the client',
    'namespace to the endpoint namespace (devices made in the host namespaces and moved in, wireguard-go, MTU 1440); nebula',
    '(MTU 1300) and tinc 1.0 (router mode) run as users run them, daemon and tun device in each host namespace. Every daemon',
    '(the agent\'s and the hand-made wireguard-go, nebula, tincd) runs in a session of its own, as under systemd: with the',
    'kernel\'s autogroups on, a daemon sharing the benchmark\'s session would share one CPU share with iperf3. All of them',
    'are userspace tunnels sharing the same 2 cores with iperf3, so read them as ratios. Gbit/s:',
    '',
    table(
      ['path', 'Gbit/s', 'ratio'],
      [
        ['agent WireGuard vWire (wireguard-go)', gbit(T.agentWg), (T.agentWg / T.handWg).toFixed(2)],
        ['hand-made wireguard-go tunnel, same namespaces', gbit(T.handWg), '1.00'],
        ['nebula between the two hosts', gbit(T.nebula), (T.nebula / T.handWg).toFixed(2)],
        ['tinc between the two hosts', gbit(T.tinc), (T.tinc / T.handWg).toFixed(2)],
        ['agent local vWire (veth)', gbit(T.agentLocal), (T.agentLocal / T.bareVeth).toFixed(2)],
        ['bare veth pair', gbit(T.bareVeth), '1.00'],
      ],
    ),
    '',
    'Packets never pass through the agent: both WireGuard rows are the same wireguard-go binary with the same MTU and peer',
    'settings, and the local vWire is a veth pair like the bare one, so the ratios measure only what the agent adds.',
    `Target vWire throughput at least 0.9 of the hand-made equivalent: WireGuard ${T.agentWg / T.handWg >= 0.9 ? 'met' : 'missed'}, local ${T.agentLocal / T.bareVeth >= 0.9 ? 'met' : 'missed'}.`,
  ].join('\n');
  console.log(body);
  writeSection('dataplane', body);
});
