// Remote vWires (issue 3). Two hosts (namespaces on a bridge), each running its own agent
// (host-b also serves the registry); a client namespace on host-a, endpoint namespaces on
// host-b.
//  1. Connect latency, agents warm: NSM Request on host-a's unix socket for a service on
//     host-b until the answer (both tunnel ends exist, addresses and routes set), for
//     WireGuard (payload IP) and VXLAN (payload ETHERNET). Close after each, not timed.
//  2. Throughput (iperf3 TCP, client namespace -> endpoint namespace), rounds interleaved:
//     - the agent's WireGuard vWire vs a hand-made wireguard-go tunnel between the same two
//       namespaces, built the same way (devices in the host namespaces, moved in, one peer);
//     - a local vWire (agent veth between two namespaces on host-a) vs a bare veth pair.
//
// Usage (root): npm run build && node bench/remote.mjs [connects] [iperf-seconds]
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { summary, ms, table, machine, writeSection, ROOT } from './lib.mjs';

const require = createRequire(import.meta.url);
const grpc = require('@grpc/grpc-js');
const YAML = require('yaml');
const { api } = require(`${ROOT}dist/api/index.js`);
const { generateKeyPair } = require(`${ROOT}dist/mechanisms/wireguard/keys.js`);
const N = Number(process.argv[2] ?? 100);
const SECONDS = Number(process.argv[3] ?? 3);
const ROUNDS = 3;
const P = 'nsmr';
const NS = { ul: `${P}-ul`, a: `${P}-a`, b: `${P}-b`, nsc: `${P}-nsc`, nse: `${P}-nse`, nsx: `${P}-nsx`, lc: `${P}-lc`, le: `${P}-le` };
const IP = { a: '10.223.0.1', b: '10.223.0.2' };

function sh(cmd, args, input) {
  return new Promise((resolve, reject) => {
    const p = execFile(cmd, args, { maxBuffer: 1 << 24 }, (err, stdout, stderr) => (err ? reject(new Error(`${cmd} ${args.join(' ')}: ${stderr}`)) : resolve(stdout)));
    if (input !== undefined) p.stdin.end(input);
  });
}
const ip = (args, input) => sh('ip', args, input);

async function topology() {
  for (const n of Object.values(NS)) await ip(['netns', 'add', n]);
  await ip(['-n', NS.ul, 'link', 'add', 'br0', 'type', 'bridge']);
  await ip(['-n', NS.ul, 'link', 'set', 'br0', 'up']);
  for (const [i, h] of ['a', 'b'].entries()) {
    await ip(['link', 'add', 'eth0', 'netns', NS[h], 'type', 'veth', 'peer', 'name', `p${i}`, 'netns', NS.ul]);
    await ip(['-n', NS.ul, 'link', 'set', `p${i}`, 'master', 'br0', 'up']);
    await ip(['-n', NS[h], '-batch', '-'], `addr add ${IP[h]}/24 dev eth0\nlink set eth0 up\nlink set lo up\nroute add default dev eth0\n`);
  }
  for (const n of [NS.nsc, NS.nse, NS.nsx, NS.lc, NS.le]) await ip(['-n', n, 'link', 'set', 'lo', 'up']);
}

function startAgent(dir, host, config) {
  const socket = path.join(dir, `${host}.sock`);
  const file = path.join(dir, `${host}.yaml`);
  writeFileSync(file, YAML.stringify({ name: `host-${host}`, logLevel: 'warn', listen: { unix: socket, tcp: `${IP[host]}:5001` }, ...config }));
  const proc = spawn('ip', ['netns', 'exec', NS[host], process.execPath, `${ROOT}bin/nsm-agent`, 'run', '--config', file], { stdio: 'inherit' });
  return { socket, proc };
}

async function ready(socket) {
  for (let t = 0; ; t++) {
    if (existsSync(socket)) {
      const ok = await new Promise((resolve) => {
        const c = new grpc.Client(`unix://${socket}`, grpc.credentials.createInsecure());
        c.waitForReady(Date.now() + 500, (err) => {
          c.close();
          resolve(!err);
        });
      });
      if (ok) return;
    }
    if (t > 600) throw new Error(`agent at ${socket} did not start`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function client(socket) {
  const C = api().ns.networkservice.NetworkService;
  const c = new C(`unix://${socket}`, grpc.credentials.createInsecure());
  const call = (m, req) => new Promise((resolve, reject) => c[m](req, { deadline: Date.now() + 60_000 }, (err, res) => (err ? reject(err) : resolve(res))));
  return {
    request: (id, service, netns, ifname) =>
      call('Request', {
        connection: { id, network_service: service },
        mechanism_preferences: [{ cls: 'LOCAL', type: 'KERNEL', parameters: { name: ifname, inodeURL: `file:///run/netns/${netns}` } }],
      }),
    close: (conn) => call('Close', conn),
    dispose: () => grpc.Client.prototype.close.call(c),
  };
}

async function timed(fn) {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** iperf3 TCP from `from` to `to` at `addr`; bits per second received. */
async function iperf(from, to, addr) {
  const server = spawn('ip', ['netns', 'exec', to, 'iperf3', '-s', '-1', '-B', addr], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 300));
    const out = await sh('ip', ['netns', 'exec', from, 'iperf3', '-c', addr, '-t', String(SECONDS), '-J']);
    return JSON.parse(out).end.sum_received.bits_per_second;
  } finally {
    server.kill('SIGKILL');
  }
}

/** A wireguard-go tunnel by hand between nsc (via host-a) and nse (via host-b), as the agent builds it. */
async function handWireguard(dir) {
  const keys = { a: generateKeyPair(), b: generateKeyPair() };
  const procs = [];
  const ends = [
    { h: 'a', ns: NS.nsc, dev: `${P}wga`, port: 53001, addr: '172.31.0.1', peer: 'b', peerAddr: '172.31.0.2', peerPort: 53002 },
    { h: 'b', ns: NS.nse, dev: `${P}wgb`, port: 53002, addr: '172.31.0.2', peer: 'a', peerAddr: '172.31.0.1', peerPort: 53001 },
  ];
  for (const e of ends) {
    const p = spawn('ip', ['netns', 'exec', NS[e.h], 'wireguard-go', e.dev], { stdio: 'ignore', env: { ...process.env, WG_PROCESS_FOREGROUND: '1' } });
    procs.push(p);
    for (let t = 0; !existsSync(`/var/run/wireguard/${e.dev}.sock`); t++) {
      if (t > 200) throw new Error('wireguard-go did not start');
      await new Promise((r) => setTimeout(r, 10));
    }
    const keyFile = path.join(dir, `${e.dev}.key`);
    writeFileSync(keyFile, keys[e.h].privateKey, { mode: 0o600 });
    await sh('wg', ['set', e.dev, 'private-key', keyFile, 'listen-port', String(e.port), 'peer', keys[e.peer].publicKey, 'endpoint', `${IP[e.peer]}:${e.peerPort}`, 'allowed-ips', '0.0.0.0/0', 'persistent-keepalive', '10']);
    await ip(['-n', NS[e.h], 'link', 'set', e.dev, 'mtu', '1440', 'netns', NS[e.ns === NS.nsc ? 'nsc' : 'nse'], 'name', 'hw0']);
    await ip(['-n', e.ns, '-batch', '-'], `addr add ${e.addr}/32 dev hw0\nlink set hw0 up\nroute add ${e.peerAddr}/32 dev hw0 scope link\n`);
  }
  return {
    addr: '172.31.0.2',
    async remove() {
      for (const p of procs) p.kill('SIGTERM');
      await Promise.all(procs.map((p) => (p.exitCode === null ? new Promise((r) => p.once('exit', r)) : null)));
    },
  };
}

async function bareVeth() {
  await ip(['link', 'add', 'bv0', 'netns', NS.lc, 'type', 'veth', 'peer', 'name', 'bv1', 'netns', NS.le]);
  await ip(['-n', NS.lc, '-batch', '-'], 'addr add 172.30.0.1/32 dev bv0\nlink set bv0 up\nroute add 172.30.0.2/32 dev bv0 scope link\n');
  await ip(['-n', NS.le, '-batch', '-'], 'addr add 172.30.0.2/32 dev bv1\nlink set bv1 up\nroute add 172.30.0.1/32 dev bv1 scope link\n');
  return { addr: '172.30.0.2', remove: () => ip(['-n', NS.lc, 'link', 'del', 'bv0']) };
}

const median = (xs) => summary(xs).p50;

async function main() {
  if (process.getuid() !== 0) throw new Error('run as root');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nsmr-'));
  const agents = [];
  try {
    await topology();
    const b = startAgent(dir, 'b', {
      registry: { url: 'embedded' },
      endpoints: [
        { name: 'wg-ep', services: ['bench-ip'], cidr: '10.210.0.0/16', netns: NS.nse },
        { name: 'vx-ep', services: ['bench-eth'], cidr: '10.211.0.0/16', netns: NS.nsx, payload: 'ETHERNET' },
      ],
    });
    agents.push(b);
    await ready(b.socket);
    const a = startAgent(dir, 'a', {
      registry: { url: `tcp://${IP.b}:5002` },
      endpoints: [{ name: 'local-ep', services: ['bench-local'], cidr: '10.212.0.0/16', netns: NS.le }],
    });
    agents.push(a);
    await ready(a.socket);
    const c = client(a.socket);

    const connects = async (service, tag, count) => {
      const out = [];
      for (let i = 0; i < count; i++) {
        let conn;
        out.push(await timed(async () => (conn = await c.request(`${tag}-${i}`, service, NS.nsc, `${tag}${i}`))));
        await c.close(conn);
      }
      return out;
    };
    await connects('bench-ip', 'warmw', 5);
    await connects('bench-eth', 'warmv', 5);
    // Interleave WireGuard and VXLAN in blocks so background noise hits both.
    const wg = [];
    const vx = [];
    for (let k = 0; k < 4; k++) {
      wg.push(...(await connects('bench-ip', `w${k}x`, Math.ceil(N / 4))));
      vx.push(...(await connects('bench-eth', `v${k}x`, Math.ceil(N / 4))));
    }

    // Throughput, rounds interleaved.
    const tp = { agentWg: [], handWg: [], agentLocal: [], bareVeth: [] };
    for (let r = 0; r < ROUNDS; r++) {
      const w = await c.request(`tp-wg-${r}`, 'bench-ip', NS.nsc, 'nsm-1');
      const wAddr = w.context.ip_context.dst_ip_addrs[0].split('/')[0];
      tp.agentWg.push(await iperf(NS.nsc, NS.nse, wAddr));
      await c.close(w);
      const h = await handWireguard(dir);
      tp.handWg.push(await iperf(NS.nsc, NS.nse, h.addr));
      await h.remove();
      const l = await c.request(`tp-l-${r}`, 'bench-local', NS.lc, 'nsm-2');
      const lAddr = l.context.ip_context.dst_ip_addrs[0].split('/')[0];
      tp.agentLocal.push(await iperf(NS.lc, NS.le, lAddr));
      await c.close(l);
      const v = await bareVeth();
      tp.bareVeth.push(await iperf(NS.lc, NS.le, v.addr));
      await v.remove();
    }
    c.dispose();

    const S = { wg: summary(wg), vx: summary(vx) };
    const gbit = (x) => (x / 1e9).toFixed(2);
    const T = Object.fromEntries(Object.entries(tp).map(([k, v]) => [k, median(v)]));
    const body = [
      '## Remote vWires: connect latency and throughput (issue 3)',
      '',
      `Command: \`node bench/remote.mjs ${N} ${SECONDS}\` (after \`npm run build\`), ${new Date().toISOString().slice(0, 10)}.`,
      `Machine: ${machine()}.`,
      '',
      'Two hosts (namespaces on a bridge), each running `nsm-agent run`; host-b also serves the registry.',
      'One connect = NSM `Request` on host-a\'s unix socket for a service on host-b, until the answer:',
      'both tunnel ends exist in the client and endpoint namespaces with addresses and routes (WireGuard:',
      'two wireguard-go processes started and configured over UAPI; VXLAN: one kernel device per side).',
      'Agents warm; close after each connect, not timed. Milliseconds:',
      '',
      table(['mechanism', 'runs', 'p50', 'p99'], [['WireGuard (wireguard-go)', S.wg.n, ms(S.wg.p50), ms(S.wg.p99)], ['VXLAN', S.vx.n, ms(S.vx.p50), ms(S.vx.p99)]]),
      '',
      `Throughput, iperf3 TCP ${SECONDS} s, client namespace to endpoint namespace, median of ${ROUNDS} interleaved rounds (Gbit/s):`,
      '',
      table(
        ['path', 'Gbit/s', 'ratio'],
        [
          ['agent WireGuard vWire (wireguard-go)', gbit(T.agentWg), (T.agentWg / T.handWg).toFixed(2)],
          ['hand-made wireguard-go tunnel, same namespaces', gbit(T.handWg), '1.00'],
          ['agent local vWire (veth)', gbit(T.agentLocal), (T.agentLocal / T.bareVeth).toFixed(2)],
          ['bare veth pair', gbit(T.bareVeth), '1.00'],
        ],
      ),
      '',
      'Packets never pass through the agent: both WireGuard paths are the same wireguard-go binary with the',
      'same MTU (1440) and peer settings, so the ratio measures only what the agent adds (nothing in the path).',
    ].join('\n');
    console.log(body);
    writeSection('remote', body);
  } finally {
    for (const ag of agents.reverse()) {
      ag.proc.kill('SIGTERM');
      if (ag.proc.exitCode === null) await new Promise((r) => ag.proc.once('exit', r));
    }
    for (const n of Object.values(NS).reverse()) await ip(['netns', 'del', n]).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
