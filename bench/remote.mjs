// Remote connect. Two hosts (namespaces on a bridge), each running its own
// `nsm-agent run` (host-b also serves the registry); a client namespace for host-a, endpoint
// namespaces for host-b.
//  1. Agents warm: NSM Request on host-a's unix socket for a service on host-b until the answer
//     (both tunnel ends exist with addresses and routes), then until the first ping from the
//     client namespace to the endpoint address is answered; WireGuard (payload IP) and VXLAN
//     (payload ETHERNET) take turns run by run. Close after each, not timed.
//  2. What a user would do instead, between the same two host namespaces, interleaved in rounds:
//     - `wg-quick up` of an equivalent wireguard-go tunnel on both hosts
//       (WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go, config files in a temp dir), until the
//       first ping; and the same plus the key exchange done by hand (wg genkey/pubkey on each
//       side, both config files written);
//     - nebula (host-b the lighthouse; CA and certificates made once with nebula-cert): both
//       daemons started until the first ping.
//
// Usage (root): npm run build && node bench/remote.mjs [runs] [--peer-runs N]
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { run } from '../test/harness/exec.mjs';
import { pidsByArgv, stopPid } from '../test/harness/proc.mjs';
import { NsmClient, kernelRequest } from '../test/harness/clients.mjs';
import { args, TAG, summary, ms, table, machine, versions, writeSection, date, mono } from './lib.mjs';
import { main } from './scope.mjs';

const opt = args();
const N = Number(opt._[0] ?? 200);
const PEER_RUNS = Number(opt['peer-runs'] ?? 30);
const P = `nsmr${TAG}`;

/** Agents on the first two hosts of `mesh`: host-b serves the registry and the endpoints. */
export async function twoAgents(scope, dir, mesh, { aConfig = {}, bConfig = {}, endpoints = [] } = {}) {
  const [ha, hb] = mesh.hosts;
  const identity = { source: 'dev', dev: { caDir: path.join(dir, 'ca'), allowNonLoopback: true } };
  const b = await scope.agent({
    dir,
    name: 'host-b',
    netns: hb.netns,
    config: { identity, listen: { tcp: `${hb.ip}:5001` }, registry: { url: 'embedded' }, endpoints, ...bConfig },
  });
  const a = await scope.agent({
    dir,
    name: 'host-a',
    netns: ha.netns,
    config: { identity, listen: { tcp: `${ha.ip}:5001` }, registry: { url: `tcp://${hb.ip}:5002` }, ...aConfig },
  });
  return { a, b };
}

async function wgQuick(scope, dir, mesh, pingA, r, withKeys) {
  const [ha, hb] = mesh.hosts;
  const dev = { a: `${P}q${r % 100}a`, b: `${P}q${r % 100}b` };
  const t0 = mono();
  let keys;
  if (withKeys) {
    // the key exchange by hand: each side makes its key pair; the public keys cross over
    const gen = async () => {
      const priv = (await run('wg', ['genkey'])).trim();
      return { priv, pub: (await run('wg', ['pubkey'], priv + '\n')).trim() };
    };
    keys = { a: await gen(), b: await gen() };
  } else keys = wgQuick.keys ??= { a: await genPair(), b: await genPair() };
  const conf = (me, peer, n, port, peerPort, peerIp) =>
    `[Interface]\nPrivateKey = ${keys[me].priv}\nListenPort = ${port}\nAddress = 10.99.${r % 250}.${n}/24\n\n` +
    `[Peer]\nPublicKey = ${keys[peer].pub}\nEndpoint = ${peerIp}:${peerPort}\nAllowedIPs = 10.99.${r % 250}.0/24\n`;
  const files = { a: path.join(dir, `${dev.a}.conf`), b: path.join(dir, `${dev.b}.conf`) };
  writeFileSync(files.a, conf('a', 'b', 1, 51001, 51002, hb.ip), { mode: 0o600 });
  writeFileSync(files.b, conf('b', 'a', 2, 51002, 51001, ha.ip), { mode: 0o600 });
  const env = { ...process.env, WG_QUICK_USERSPACE_IMPLEMENTATION: 'wireguard-go' };
  const up = (h, f) => run('ip', ['netns', 'exec', h.netns, 'wg-quick', 'up', f], undefined, { env });
  const down = async () => {
    for (const [h, f, d] of [[ha, files.a, dev.a], [hb, files.b, dev.b]]) {
      await run('ip', ['netns', 'exec', h.netns, 'wg-quick', 'down', f], undefined, { env }).catch(() => {});
      for (const pid of pidsByArgv(['wireguard-go', d])) await stopPid(pid); // daemonized: by PID
    }
  };
  let finished = false;
  scope.defer(() => (finished ? undefined : down()));
  try {
    await Promise.all([up(ha, files.a), up(hb, files.b)]);
    const t1 = await pingA.ping(`10.99.${r % 250}.2`, 10_000);
    return t1 - t0;
  } finally {
    await down();
    finished = true;
  }
}
async function genPair() {
  const priv = (await run('wg', ['genkey'])).trim();
  return { priv, pub: (await run('wg', ['pubkey'], priv + '\n')).trim() };
}

/** CA and two certificates, configs for host-a and host-b (the lighthouse). */
export async function nebulaSetup(dir, mesh) {
  const d = path.join(dir, 'nebula');
  mkdirSync(d, { recursive: true });
  await run('nebula-cert', ['ca', '-name', 'bench', '-out-crt', `${d}/ca.crt`, '-out-key', `${d}/ca.key`]);
  const ips = { a: '10.98.0.1', b: '10.98.0.2' };
  for (const h of ['a', 'b']) {
    await run('nebula-cert', ['sign', '-ca-crt', `${d}/ca.crt`, '-ca-key', `${d}/ca.key`, '-name', h, '-ip', `${ips[h]}/24`, '-out-crt', `${d}/${h}.crt`, '-out-key', `${d}/${h}.key`]);
  }
  const [ha, hb] = mesh.hosts;
  const cfg = (h) => {
    const light = h === 'b';
    return [
      `pki: {ca: ${d}/ca.crt, cert: ${d}/${h}.crt, key: ${d}/${h}.key}`,
      light ? 'static_host_map: {}' : `static_host_map: {"${ips.b}": ["${hb.ip}:4242"]}`,
      light ? 'lighthouse: {am_lighthouse: true, hosts: []}' : `lighthouse: {am_lighthouse: false, interval: 60, hosts: ["${ips.b}"]}`,
      `listen: {host: 0.0.0.0, port: ${light ? 4242 : 4243}}`,
      'punchy: {punch: false}',
      `tun: {dev: ${P}n${h}, mtu: 1300}`,
      'logging: {level: error}',
      'firewall: {outbound: [{port: any, proto: any, host: any}], inbound: [{port: any, proto: any, host: any}]}',
      '',
    ].join('\n');
  };
  const files = { a: `${d}/a.yml`, b: `${d}/b.yml` };
  writeFileSync(files.a, cfg('a'));
  writeFileSync(files.b, cfg('b'));
  for (const f of Object.values(files)) await run('nebula', ['-test', '-config', f]);
  return { files, ips, hosts: { a: ha, b: hb } };
}

/** Both nebula daemons started at once, until the first ping from host-a to host-b's nebula IP. */
async function nebulaRun(scope, neb, pingA) {
  const t0 = mono();
  const procs = ['b', 'a'].map((h) => scope.proc(spawn('ip', ['netns', 'exec', neb.hosts[h].netns, 'nebula', '-config', neb.files[h]], { stdio: 'ignore' })));
  try {
    const t1 = await pingA.ping(neb.ips.b, 15_000);
    return t1 - t0;
  } finally {
    for (const p of procs) await stopPid(p);
  }
}

if (import.meta.url === `file://${process.argv[1]}`)
  main(async (scope) => {
    const dir = scope.dir('nsmr-');
    const mesh = await scope.hosts(2, P, 223);
    const nsc = mesh.netns('nsc');
    const nse = mesh.netns('nse');
    const nsx = mesh.netns('nsx');
    const { a } = await twoAgents(scope, dir, mesh, {
      endpoints: [
        { name: 'wg-ep', services: ['bench-ip'], cidr: '10.210.0.0/16', netns: nse },
        { name: 'vx-ep', services: ['bench-eth'], cidr: '10.211.0.0/16', netns: nsx, payload: 'ETHERNET' },
      ],
    });
    const c = new NsmClient(a.socket, { timeoutMs: 60_000 });
    scope.defer(() => c.dispose());
    const pingC = await scope.prober(nsc);
    const pingA = await scope.prober(mesh.hosts[0].netns);

    const once = async (service, tag) => {
      const t0 = mono();
      const conn = await c.request(kernelRequest(tag, service, nsc, tag));
      const t1 = mono();
      const t2 = await pingC.ping(conn.context.ip_context.dst_ip_addrs[0].split('/')[0]);
      await c.close(conn);
      return [t1 - t0, t2 - t0];
    };
    for (let i = 0; i < 5; i++) await once('bench-ip', `ww${i}`), await once('bench-eth', `wv${i}`);
    const res = { wg: [], wgPing: [], vx: [], vxPing: [] };
    for (let i = 0; i < N; i++) {
      const order = i % 2 ? ['vx', 'wg'] : ['wg', 'vx'];
      for (const m of order) {
        const [t, tp] = await once(m === 'wg' ? 'bench-ip' : 'bench-eth', `${m}${i}`);
        res[m].push(t);
        res[`${m}Ping`].push(tp);
      }
    }

    // Peers, interleaved round by round.
    const neb = await nebulaSetup(dir, mesh);
    const peers = { wgq: [], wgqKeys: [], neb: [] };
    await wgQuick(scope, dir, mesh, pingA, 999, false); // warm the page cache
    for (let r = 0; r < PEER_RUNS; r++) {
      peers.wgq.push(await wgQuick(scope, dir, mesh, pingA, r, false));
      peers.neb.push(await nebulaRun(scope, neb, pingA));
      peers.wgqKeys.push(await wgQuick(scope, dir, mesh, pingA, r, true));
    }

    const S = Object.fromEntries(Object.entries({ ...res, ...peers }).map(([k, v]) => [k, summary(v)]));
    const row = (name, s) => [name, s.n, ms(s.p50), ms(s.p99)];
    const r2 = (a, b) => (a / b).toFixed(2);
    const body = [
      '## Remote connect against wg-quick and nebula (issues 3 and 7)',
      '',
      `Command: \`node bench/remote.mjs ${N} --peer-runs ${PEER_RUNS}\` (after \`npm run build\`; part of \`npm run bench\`), ${date()}.`,
      `Machine: ${machine()}, ${await versions(['wireguard-go', 'wireguard-tools', 'nebula'])}.`,
      '',
      'Two hosts (namespaces on a bridge), each running `nsm-agent run`; host-b also serves the registry.',
      "Agent rows: NSM `Request` on host-a's unix socket for a service on host-b, agents warm, until the answer",
      '(both tunnel ends exist in the client and endpoint namespaces with addresses and routes; WireGuard: wireguard-go',
      'on both sides, the kernel here has no WireGuard), and until the first ping from the client namespace to the',
      'endpoint address is answered (ICMP echo every 1 ms). WireGuard and VXLAN take turns run by run; close not timed.',
      'Peer rows, between the same two host namespaces, in interleaved rounds: `wg-quick up` on both hosts at once',
      '(`WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go`, configs in a temp dir) until the first ping; the same with the',
      'key exchange by hand (`wg genkey`/`wg pubkey` per side, configs written); nebula (host-b the lighthouse, certificates',
      'made beforehand with `nebula-cert`) from starting both daemons until the first ping. Milliseconds:',
      '',
      table(
        ['path', 'runs', 'p50', 'p99'],
        [
          row('agent WireGuard: Request answered', S.wg),
          row('agent WireGuard: to first ping', S.wgPing),
          row('agent VXLAN: Request answered', S.vx),
          row('agent VXLAN: to first ping', S.vxPing),
          row('wg-quick up (both) to first ping', S.wgq),
          row('wg-quick + keys by hand to first ping', S.wgqKeys),
          row('nebula start (both) to first ping', S.neb),
        ],
      ),
      '',
      `Ratios at p50, agent WireGuard to first ping over: wg-quick ${r2(S.wgPing.p50, S.wgq.p50)}, wg-quick with keys ${r2(S.wgPing.p50, S.wgqKeys.p50)}, nebula ${r2(S.wgPing.p50, S.neb.p50)}.`,
      `Target WireGuard connect p50 < 60 ms: ${S.wg.p50 < 60 ? 'met' : 'missed'} (${ms(S.wg.p50)} ms); faster than wg-quick with keys by hand: ${S.wgPing.p50 < S.wgqKeys.p50 ? 'yes' : 'no'}; than nebula: ${S.wgPing.p50 < S.neb.p50 ? 'yes' : 'no'}.`,
    ].join('\n');
    console.log(body);
    writeSection('remote', body);
  });
