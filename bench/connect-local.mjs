// Local connect latency (issue 2): a running agent, a raw NSM client on its unix socket
// requesting kernel://bench/<if> for a client namespace (veth to the endpoint's namespace,
// /32 addresses, routes, permanent neighbours on both sides), against the same interface
// work done with the fewest iproute2 calls:
//   ip link add A netns C type veth peer name B netns E   (+ one `ip -n X -batch -` per side)
// 200 sequential and 200 concurrent cycles each (connect timed; teardown not counted).
//
// Usage (root): npm run build && node bench/connect-local.mjs [cycles]
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { promisify } from 'node:util';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { summary, ms, table, machine, writeSection, ROOT } from './lib.mjs';

const require = createRequire(import.meta.url);
const grpc = require('@grpc/grpc-js');
const { api } = require(`${ROOT}dist/api/index.js`);
const run = promisify(execFile);
const N = Number(process.argv[2] ?? 200);
const NSE = 'nsmb-nse';
const NSC = 'nsmb-nsc';

async function ip(args, input) {
  return new Promise((resolve, reject) => {
    const p = execFile('ip', args, (err, stdout, stderr) => (err ? reject(new Error(`ip ${args.join(' ')}: ${stderr}`)) : resolve(stdout)));
    if (input !== undefined) p.stdin.end(input);
  });
}

function mac(i, side) {
  return `02:${side}:00:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
}

/** The same interface work as the agent's KERNEL mechanism, with the fewest iproute2 calls. */
async function iprouteConnect(i) {
  const c = `10.201.${i >> 8}.${i & 255}`; // client side
  const e = `10.202.${i >> 8}.${i & 255}`; // endpoint side
  const ca = `c${i}`;
  const ea = `e${i}`;
  await ip(['link', 'add', ca, 'address', mac(i, 'aa'), 'netns', NSC, 'type', 'veth', 'peer', 'name', ea, 'address', mac(i, 'bb'), 'netns', NSE]);
  await Promise.all([
    ip(['-n', NSC, '-batch', '-'], `addr add ${c}/32 dev ${ca}\nlink set ${ca} up\nroute add ${e}/32 dev ${ca} scope link\nneigh replace ${e} lladdr ${mac(i, 'bb')} dev ${ca} nud permanent\n`),
    ip(['-n', NSE, '-batch', '-'], `addr add ${e}/32 dev ${ea}\nlink set ${ea} up\nroute add ${c}/32 dev ${ea} scope link\nneigh replace ${c} lladdr ${mac(i, 'aa')} dev ${ea} nud permanent\n`),
  ]);
}

async function iprouteDisconnect(i) {
  await ip(['-n', NSC, 'link', 'del', `c${i}`]);
}

function client(socket) {
  const C = api().ns.networkservice.NetworkService;
  const c = new C(`unix://${socket}`, grpc.credentials.createInsecure());
  const call = (m, req) =>
    new Promise((resolve, reject) => c[m](req, { deadline: Date.now() + 60_000 }, (err, res) => (err ? reject(err) : resolve(res))));
  return {
    request: (id, ifname) =>
      call('Request', {
        connection: { id, network_service: 'bench' },
        mechanism_preferences: [{ cls: 'LOCAL', type: 'KERNEL', parameters: { name: ifname, inodeURL: `file:///run/netns/${NSC}` } }],
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

async function sequential(connect, disconnect) {
  const out = [];
  for (let i = 0; i < N; i++) {
    out.push(await timed(() => connect(i)));
    await disconnect(i);
  }
  return out;
}

async function concurrent(connect, disconnect) {
  const out = await Promise.all(Array.from({ length: N }, (_, i) => timed(() => connect(i))));
  await Promise.all(Array.from({ length: N }, (_, i) => disconnect(i)));
  return out;
}

async function main() {
  if (process.getuid() !== 0) throw new Error('run as root');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nsmb-'));
  const socket = path.join(dir, 'agent.sock');
  const cfg = path.join(dir, 'agent.yaml');
  writeFileSync(
    cfg,
    `name: bench\nlogLevel: warn\nlisten: {unix: ${socket}}\nendpoints:\n  - {name: bench, services: [bench], cidr: 10.200.0.0/16, netns: ${NSE}, payload: IP}\n`,
  );
  for (const n of [NSE, NSC]) await ip(['netns', 'add', n]);
  const agent = spawn(process.execPath, [`${ROOT}bin/nsm-agent`, 'run', '--config', cfg], { stdio: 'inherit' });
  try {
    for (let t = 0; !existsSync(socket); t++) {
      if (t > 300) throw new Error('agent did not start');
      await new Promise((r) => setTimeout(r, 20));
    }
    const c = client(socket);
    const conns = new Map();
    const agentConnect = async (i) => conns.set(i, await c.request(`b-${i}`, `b${i}`));
    const agentDisconnect = async (i) => {
      await c.close(conns.get(i));
      conns.delete(i);
    };
    // warm up both paths
    for (let i = 0; i < 10; i++) {
      await agentConnect(i);
      await agentDisconnect(i);
      await iprouteConnect(i);
      await iprouteDisconnect(i);
    }
    // interleave the two so that background noise hits both alike
    const results = {};
    results.agentSeq = await sequential(agentConnect, agentDisconnect);
    results.ipSeq = await sequential(iprouteConnect, iprouteDisconnect);
    results.agentConc = await concurrent(agentConnect, agentDisconnect);
    results.ipConc = await concurrent(iprouteConnect, iprouteDisconnect);
    c.dispose();

    const row = (name, s) => [name, s.n, ms(s.p50), ms(s.p99)];
    const S = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, summary(v)]));
    const body = [
      '## Local connect latency (issue 2)',
      '',
      `Command: \`node bench/connect-local.mjs ${N}\` (after \`npm run build\`), ${new Date().toISOString().slice(0, 10)}.`,
      `Machine: ${machine()}.`,
      '',
      'One connect = NSM `Request` over the agent\'s unix socket for `kernel://bench/<if>` until the answer',
      '(veth pair between the client and endpoint namespaces, /32 addresses, link routes, permanent',
      'neighbours on both sides), against the same work with the fewest iproute2 calls',
      '(`ip link add … netns C type veth peer … netns E`, then one `ip -n X -batch -` per side, in parallel).',
      'Teardown is not timed. Milliseconds:',
      '',
      table(
        ['path', 'runs', 'p50', 'p99'],
        [
          row('agent, sequential', S.agentSeq),
          row('iproute2, sequential', S.ipSeq),
          row(`agent, ${N} concurrent`, S.agentConc),
          row(`iproute2, ${N} concurrent`, S.ipConc),
        ],
      ),
      '',
      `Ratio agent / iproute2 at p50: sequential ${(S.agentSeq.p50 / S.ipSeq.p50).toFixed(2)}, concurrent ${(S.agentConc.p50 / S.ipConc.p50).toFixed(2)}.`,
    ].join('\n');
    console.log(body);
    writeSection('connect-local', body);
  } finally {
    agent.kill('SIGTERM');
    await new Promise((r) => agent.once('exit', r));
    for (const n of [NSE, NSC]) await ip(['netns', 'del', n]).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
