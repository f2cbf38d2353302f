// Cold start: `nsm-agent run` from spawn to READY=1 (sd_notify, caught on a unix
// datagram socket given as NOTIFY_SOCKET, as systemd would) and to its first connected vWire,
// runs interleaved:
//   idle:   one hosted endpoint, no connections: spawn -> gRPC serving on the unix socket, -> READY=1
//   service: the same with CACHE_DIRECTORY, as the packaged service runs it: from the second start on,
//           the code cache is the one its first start wrote (all the start compiled), -> READY=1
//   local:  plus `connections: [kernel://bench/nsm-1 into a client namespace]`: spawn -> first ping
//           from the client namespace over the new vWire answered, -> READY=1
//   remote: host-a's agent with `connections: [kernel://bench-ip/nsm-1]` for a WireGuard endpoint on
//           host-b (whose agent keeps running): spawn -> first ping over the tunnel, -> READY=1
//   node:   `node -e 0` spawn -> exit, the runtime's own floor.
// Each agent run ends with SIGTERM (its connections closed), not timed.
//
//   also:   with --also FILE, the idle scenario again with another build's entry (e.g. one whose
//           dist/ has no daemon bundle: scripts/bundle-daemon.mjs), interleaved with the rest.
//
// Usage (root): npm run build && node bench/coldstart.mjs [runs] [--also FILE]
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { ip, run, sleep } from '../test/harness/exec.mjs';
import { stopPid } from '../test/harness/proc.mjs';
import { BIN } from '../test/harness/agent.mjs';
import { waitServing } from '../test/harness/clients.mjs';
import { args, TAG, mono, summary, ms, table, machine, writeSection, date } from './lib.mjs';
import { main } from './scope.mjs';
import { twoAgents } from './remote.mjs';

const opt = args();
const N = Number(opt._[0] ?? 20);
const P = `nsmc${TAG}`;

main(async (scope) => {
  const dir = scope.dir('nsmc-');
  const nse = await scope.netns(`${P}-nse`);
  const nsc = await scope.netns(`${P}-nsc`);
  const mesh = await scope.hosts(2, P, 224);
  const rnsc = mesh.netns('rnsc');
  const rnse = mesh.netns('rnse');
  const endpoint = { name: 'bench', services: ['bench'], cidr: '10.200.0.0/16', netns: nse };
  // host-b runs all along; host-a is started cold with a connection to it
  const remote = await twoAgents(scope, dir, mesh, { endpoints: [{ name: 'wg-ep', services: ['bench-ip'], cidr: '10.210.0.0/16', netns: rnse }] });
  const aFile = remote.a.file;
  await remote.a.stop('SIGTERM', true); // its directory stays: started again from aFile below

  const notify = await scope.notifySocket(path.join(dir, 'notify.sock'));
  const env = { ...process.env, NOTIFY_SOCKET: path.join(dir, 'notify.sock') };
  const pingL = await scope.prober(nsc);
  const pingR = await scope.prober(rnsc);
  const aCfg = YAML.parse(readFileSync(aFile, 'utf8'));
  writeFileSync(aFile, YAML.stringify({ ...aCfg, connections: [{ url: 'kernel://bench-ip/nsm-1', netns: rnsc }] }));

  // READY=1 of this process (the message carries MAINPID=; `ip netns exec` execs the agent in place)
  const untilReady = async (t0, pid) => {
    for (;;) {
      const m = await notify.next();
      if (process.env.BENCH_DEBUG) console.error('notify', m.msg);
      if (/(^| )READY=1/.test(m.msg) && m.msg.includes(`MAINPID=${pid}`)) return m.t - t0;
    }
  };
  // An agent that died of the signal instead of handling it leaves its vWire: count, and remove it
  let killed = 0;
  const leftovers = async (proc, ns) => {
    if (proc.signalCode) killed++, console.error(`agent ${proc.pid} ended by ${proc.signalCode}, not by its handler`);
    for (const l of (await run('ip', ['-n', ns, '-o', 'link'])).split('\n')) {
      const name = /^\d+: ([^:@]+)/.exec(l)?.[1];
      if (name && name !== 'lo') await ip(['-n', ns, 'link', 'del', name]).catch(() => {});
    }
  };
  // the packaged service's CacheDirectory=: the first start writes the code cache there, once started
  const cacheDir = path.join(dir, 'cache');
  mkdirSync(cacheDir);
  const idle = async (bin, agentEnv = env) => {
    const t0 = mono();
    const ag = await scope.agent({ dir, name: 'idle', bin, env: agentEnv, waitReady: false, config: { endpoints: [endpoint] } });
    const ready = untilReady(t0, ag.pid);
    await waitServing(ag.socket, ag.proc);
    const serving = mono() - t0;
    const r = { serving, ready: await ready };
    const cacheFile = agentEnv.CACHE_DIRECTORY && path.join(agentEnv.CACHE_DIRECTORY, 'daemon.js.cache');
    for (let waited = 0; cacheFile && !existsSync(cacheFile); waited += 100) {
      if (waited > 10_000) throw new Error(`the agent wrote no ${cacheFile}`);
      await sleep(100);
    }
    await ag.stop('SIGTERM', true); // keeps its stateDir (the dev CA) for the next run
    return r;
  };
  const cold = {
    idle: () => idle(undefined),
    service: () => idle(undefined, { ...env, CACHE_DIRECTORY: cacheDir }),
    ...(opt.also ? { also: () => idle(opt.also) } : {}),
    async local() {
      const t0 = mono();
      const ping = pingL.ping('10.200.0.0', 30_000); // the endpoint side of the pool's first pair
      const ag = await scope.agent({ dir, name: 'local', env, waitReady: false, config: { endpoints: [endpoint], connections: [{ url: 'kernel://bench/nsm-1', netns: nsc }] } });
      const ready = await untilReady(t0, ag.pid);
      const r = { ready, ping: (await ping) - t0 };
      await ag.stop('SIGTERM', true); // keeps its stateDir (the dev CA) for the next run
      await leftovers(ag.proc, nsc);
      return r;
    },
    async remote() {
      const t0 = mono();
      const ping = pingR.ping('10.210.0.0', 30_000);
      const proc = scope.proc(spawn('ip', ['netns', 'exec', mesh.hosts[0].netns, process.execPath, BIN, 'run', '--config', aFile, '--cleanup-on-exit'], { stdio: 'inherit', env }));
      const ready = await untilReady(t0, proc.pid);
      const r = { ready, ping: (await ping) - t0 };
      await stopPid(proc, 20_000);
      await leftovers(proc, rnsc);
      return r;
    },
    async node() {
      const t0 = mono();
      await new Promise((resolve) => spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' }).once('exit', resolve));
      return { exit: mono() - t0 };
    },
  };
  const names = Object.keys(cold);
  for (const n of names) await cold[n](); // first runs: dev CA made, page cache warm
  const res = {};
  for (let i = 0; i < N; i++) {
    for (let k = 0; k < names.length; k++) {
      const n = names[(i + k) % names.length];
      for (const [key, v] of Object.entries(await cold[n]())) (res[`${n}.${key}`] ??= []).push(v);
    }
  }
  const S = Object.fromEntries(Object.entries(res).map(([k, v]) => [k, summary(v)]));
  const row = (name, s) => [name, s.n, ms(s.p50), ms(s.p99)];
  const body = [
    '## Cold start',
    '',
    `Command: \`node bench/coldstart.mjs ${N}${opt.also ? ` --also ${opt.also}` : ''}\` (after \`npm run build\`; part of \`npm run bench\`), ${date()}.`,
    `Machine: ${machine()}.`,
    '',
    'From spawning `nsm-agent run --config FILE` (a fresh Node process, dist/ in the page cache) to: its gRPC server',
    'answering on the unix socket; `READY=1` arriving on a unix datagram socket passed as `NOTIFY_SOCKET` (what systemd',
    'waits for with `Type=notify`; sent after the configured connections are up); the first ping over the configured vWire',
    '(ICMP echo every 1 ms from the client namespace). `remote`: host-a\'s agent starts cold with a connection to a',
    'WireGuard endpoint on host-b (whose agent runs all along): join to first packet. With CACHE_DIRECTORY (set by the',
    'packaged service\'s CacheDirectory=), the agent loads the code cache its first start wrote there, which holds all',
    'the start compiled; without, the one the build wrote. Scenarios interleaved run by run;',
    'each agent is stopped with SIGTERM after its run (not timed). Milliseconds:',
    '',
    table(
      ['scenario', 'runs', 'p50', 'p99'],
      [
        row('one endpoint, no connections: serving', S['idle.serving']),
        row('one endpoint, no connections: READY=1', S['idle.ready']),
        row('the same, with the code cache a first start wrote (CACHE_DIRECTORY): READY=1', S['service.ready']),
        row('with a local vWire: READY=1', S['local.ready']),
        row('with a local vWire: first ping', S['local.ping']),
        row('with a WireGuard vWire to host-b: READY=1', S['remote.ready']),
        row('with a WireGuard vWire to host-b: first ping', S['remote.ping']),
        ...(opt.also
          ? [row('one endpoint, the `--also` build: serving', S['also.serving']), row('one endpoint, the `--also` build: READY=1', S['also.ready'])]
          : []),
        row('`node -e 0` (runtime floor)', S['node.exit']),
      ],
    ),
    '',
    `Agents stopped with SIGTERM as READY=1 arrived (the stop not timed) that died of it instead of stopping cleanly: ${killed}.`,
  ].join('\n');
  console.log(body);
  writeSection('coldstart', body);
});
