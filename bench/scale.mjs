// Scale on one agent.
//  Local: N (default 1,000) connections of the local kernel mechanism requested at once through the
//  agent's control API (what `nsm-agent connect` uses: the agent holds and refreshes them), all
//  into one client namespace, with a short token lifetime (maxTokenLifetime, default 30s) so that
//  the agent refreshes each every few seconds; held for --duration (default 5m); then all
//  disconnected at once. Measured: total setup time, agent VmRSS (before, after setup, at the end),
//  agent CPU (utime+stime from /proc/PID/stat) per connection per refresh while holding, refreshes
//  counted as UPDATE events on a MonitorConnections stream, connections lost (DELETE events, and
//  `status` and interfaces at the end), teardown time.
//  Remote: M (default 100) WireGuard connections from host-a to an endpoint on host-b, at once; both
//  agents' VmRSS and the VmRSS of every wireguard-go process (children of the agents; the agents keep
//  `wireguard.spares` idle devices too, counted apart), per connection. fs.inotify.max_user_instances
//  (one per wireguard-go, 128 by default) is raised to 1024 for that part and put back after.
//  --remote 0 skips the remote part.
//
// Usage (root): npm run build && node bench/scale.mjs [--connections N] [--duration 5m] [--lifetime 30s] [--remote M]
import { readFileSync, writeFileSync } from 'node:fs';
import { requireRoot, run, sleep } from '../test/harness/exec.mjs';
import { agentClient, api } from '../test/harness/clients.mjs';
import { args, duration, rssKiB, cpuMs, childrenOf, TAG, mono, table, machine, versions, writeSection, date, mib, f1 } from './lib.mjs';
import { main } from './scope.mjs';
import { twoAgents } from './remote.mjs';

const opt = args();
const N = Number(opt.connections ?? 1000);
const HOLD = duration(opt.duration ?? '5m');
const LIFETIME = opt.lifetime ?? '30s';
const M = Number(opt.remote ?? 100);
const P = `nsms${TAG}`;

/** Counts MonitorConnections events per type until stop(). */
function monitor(socket) {
  const grpc = requireRoot('@grpc/grpc-js');
  const C = api().ns.connection.MonitorConnection;
  const c = new C(`unix://${socket}`, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 256 << 20 });
  const counts = { INITIAL_STATE_TRANSFER: 0, UPDATE: 0, DELETE: 0 };
  const updatesOf = new Map();
  const call = c.MonitorConnections({});
  call.on('data', (ev) => {
    const n = Object.keys(ev.connections ?? {}).length;
    counts[ev.type] = (counts[ev.type] ?? 0) + n;
    if (ev.type === 'UPDATE') for (const id of Object.keys(ev.connections)) updatesOf.set(id, (updatesOf.get(id) ?? 0) + 1);
  });
  call.on('error', () => {});
  return {
    counts,
    updatesOf,
    reset() {
      for (const k of Object.keys(counts)) counts[k] = 0;
      updatesOf.clear();
    },
    stop() {
      call.cancel();
      c.close();
    },
  };
}

async function links(ns) {
  return (await run('ip', ['-n', ns, '-o', 'link'])).split('\n').filter((l) => l && !/: lo:/.test(l)).length;
}

async function local(scope, dir) {
  const nse = await scope.netns(`${P}-nse`);
  const nsc = await scope.netns(`${P}-nsc`);
  const agent = await scope.agent({
    dir,
    name: 'scale',
    config: { maxTokenLifetime: LIFETIME, endpoints: [{ name: 'bench', services: ['bench'], cidr: '10.100.0.0/16', netns: nse }] },
  });
  const ctl = agentClient(agent.socket, 600_000);
  scope.defer(() => ctl.dispose());
  const mon = monitor(agent.socket);
  scope.defer(() => mon.stop());
  await sleep(1000);
  const r = { rssIdle: rssKiB(agent.pid) };
  const cpu0 = cpuMs(agent.pid);
  let t0 = mono();
  const failed = [];
  await Promise.all(
    Array.from({ length: N }, (_, i) => ctl.connect({ url: `kernel://bench/s${i}`, netns: nsc, id: `s${i}` }).catch((e) => failed.push(e.message))),
  );
  r.setupMs = mono() - t0;
  r.setupFailed = failed.length;
  if (failed.length) console.error(`${failed.length} connects failed, first: ${failed[0]}`);
  r.setupCpuMs = cpuMs(agent.pid) - cpu0;
  r.rssSetup = rssKiB(agent.pid);
  r.linksSetup = await links(nsc);
  // hold
  mon.reset();
  const cpu1 = cpuMs(agent.pid);
  t0 = mono();
  let rssMax = r.rssSetup;
  while (mono() - t0 < HOLD) {
    await sleep(Math.min(5000, HOLD - (mono() - t0) + 1));
    rssMax = Math.max(rssMax, rssKiB(agent.pid));
    process.stderr.write(`\rholding ${((mono() - t0) / 1000).toFixed(0)} s, ${mon.counts.UPDATE} refreshes, ${mon.counts.DELETE} deletes   `);
  }
  process.stderr.write('\n');
  r.holdMs = mono() - t0;
  r.holdCpuMs = cpuMs(agent.pid) - cpu1;
  r.refreshes = mon.counts.UPDATE;
  r.deletes = mon.counts.DELETE;
  r.rssEnd = rssKiB(agent.pid);
  r.rssMax = rssMax;
  const st = await ctl.status();
  r.upAtEnd = st.connections.filter((c) => c.connection?.state === 'UP').length;
  r.heldAtEnd = st.connections.filter((c) => c.origin === 'agent').length;
  r.linksEnd = await links(nsc);
  t0 = mono();
  await Promise.all(Array.from({ length: N }, (_, i) => ctl.disconnect({ id: `s${i}` }).catch(() => {})));
  r.teardownMs = mono() - t0;
  r.linksAfter = await links(nsc);
  mon.stop();
  await agent.stop();
  return r;
}

/**
 * Each wireguard-go takes one inotify instance, and fs.inotify.max_user_instances is 128 per user
 * by default (the packages raise it to 1024 with usr/lib/sysctl.d/60-nsm-agent.conf). Raised to
 * `want` for this run if lower, and put back afterwards (unless someone changed it meanwhile).
 */
const INOTIFY = '/proc/sys/fs/inotify/max_user_instances';
function raiseInotify(scope, want) {
  const old = Number(readFileSync(INOTIFY, 'utf8'));
  if (old >= want) return { old, now: old };
  writeFileSync(INOTIFY, String(want));
  scope.defer(() => {
    if (Number(readFileSync(INOTIFY, 'utf8')) === want) writeFileSync(INOTIFY, String(old));
  });
  return { old, now: want };
}

async function remote(scope, dir) {
  const mesh = await scope.hosts(2, P, 225);
  const nsc = mesh.netns('rnsc');
  const nse = mesh.netns('rnse');
  const inotify = raiseInotify(scope, 1024);
  const { a, b } = await twoAgents(scope, dir, mesh, { endpoints: [{ name: 'wg-ep', services: ['bench-ip'], cidr: '10.101.0.0/16', netns: nse }] });
  const ctl = agentClient(a.socket, 600_000);
  scope.defer(() => ctl.dispose());
  const wgRss = (pid) => childrenOf(pid, 'wireguard-go').map((p) => ({ pid: p, rss: rssKiB(p) }));
  await sleep(1000);
  const r = { inotify, rssA0: rssKiB(a.pid), rssB0: rssKiB(b.pid), spares: wgRss(a.pid).length + wgRss(b.pid).length };
  r.spareRss = [...wgRss(a.pid), ...wgRss(b.pid)].reduce((s, p) => s + p.rss, 0);
  const t0 = mono();
  const failed = [];
  await Promise.all(Array.from({ length: M }, (_, i) => ctl.connect({ url: `kernel://bench-ip/w${i}`, netns: nsc, id: `w${i}` }).catch((e) => failed.push(e.message))));
  r.setupMs = mono() - t0;
  r.failed = failed.length;
  if (failed.length) console.error(`${failed.length} remote connects failed, first: ${failed[0]}`);
  await sleep(2000); // spares refilled
  const procs = [...wgRss(a.pid), ...wgRss(b.pid)];
  r.wgProcs = procs.length;
  r.wgRss = procs.reduce((s, p) => s + p.rss, 0);
  r.rssA = rssKiB(a.pid);
  r.rssB = rssKiB(b.pid);
  r.links = await links(nsc);
  const t1 = mono();
  await Promise.all(Array.from({ length: M }, (_, i) => ctl.disconnect({ id: `w${i}` }).catch(() => {})));
  r.teardownMs = mono() - t1;
  return r;
}

main(async (scope) => {
  const dir = scope.dir('nsms-');
  const L = await local(scope, dir);
  const R = M > 0 ? await remote(scope, dir) : undefined;
  const perRefreshUs = (1000 * L.holdCpuMs) / Math.max(1, L.refreshes);
  const body = [
    '## Scale on one agent',
    '',
    `Command: \`node bench/scale.mjs --connections ${N} --duration ${opt.duration ?? '5m'} --lifetime ${LIFETIME} --remote ${M}\` (after \`npm run build\`; part of \`npm run bench\`), ${date()}.`,
    `Machine: ${machine()}, ${await versions(['wireguard-go'])}.`,
    '',
    `Local: ${N} connections (kernel mechanism, one client namespace, one hosted endpoint) requested at once over the`,
    "agent's control API (as `nsm-agent connect`; the agent holds and refreshes them), `maxTokenLifetime: " + LIFETIME + '`, held for',
    `${f1(L.holdMs / 1000)} s, then all disconnected at once. CPU is utime+stime of the agent process (/proc/PID/stat); refreshes are the`,
    'UPDATE events a MonitorConnections stream saw while holding; RSS is VmRSS.',
    '',
    table(
      ['what', 'value'],
      [
        [`setup of ${N} connections (all at once)`, `${f1(L.setupMs / 1000)} s (${L.setupFailed} failed; ${L.linksSetup} interfaces)`],
        ['agent CPU during setup, per connection', `${f1(L.setupCpuMs / N)} ms`],
        ['agent RSS idle / after setup / max while holding / at the end', `${mib(L.rssIdle)} / ${mib(L.rssSetup)} / ${mib(L.rssMax)} / ${mib(L.rssEnd)} MiB`],
        ['RSS per connection (after setup - idle)', `${f1((L.rssSetup - L.rssIdle) / N)} KiB`],
        [`refreshes while holding (${f1(L.holdMs / 1000)} s)`, `${L.refreshes} (${f1(L.refreshes / N)} per connection)`],
        ['agent CPU while holding', `${f1(L.holdCpuMs / 1000)} s (${f1((100 * L.holdCpuMs) / L.holdMs)}% of one core)`],
        ['agent CPU per connection per refresh', `${f1(perRefreshUs)} µs`],
        ['connections lost (DELETE events while holding)', `${L.deletes}`],
        ['at the end: UP in status / held by the agent / interfaces', `${L.upAtEnd} / ${L.heldAtEnd} / ${L.linksEnd}`],
        [`teardown of ${N} (all at once)`, `${f1(L.teardownMs / 1000)} s (${L.linksAfter} interfaces left)`],
      ],
    ),
    ...(R
      ? [
          '',
          `Remote: ${M} WireGuard connections (wireguard-go, one process per tunnel end) from host-a's control API to an endpoint on`,
          `host-b, requested at once. wireguard-go processes are the agents' children, counted 2 s after the setup; besides the two ends`,
          `of each connection they include the idle spares (\`wireguard.spares\`, default 2 per agent, made once WireGuard is in use).`,
          R.inotify.now > R.inotify.old
            ? `fs.inotify.max_user_instances (one per wireguard-go) was raised from ${R.inotify.old} to ${R.inotify.now} for this part, as the packages' sysctl.d file does, and put back after.`
            : `fs.inotify.max_user_instances (one per wireguard-go) was ${R.inotify.old} already (the packages' sysctl.d file sets 1024).`,
          '',
          table(
            ['what', 'value'],
            [
              [`setup of ${M} WireGuard connections (all at once)`, `${f1(R.setupMs / 1000)} s (${R.failed} failed; ${R.links} interfaces)`],
              ['agent RSS host-a / host-b, before -> after', `${mib(R.rssA0)} -> ${mib(R.rssA)} / ${mib(R.rssB0)} -> ${mib(R.rssB)} MiB`],
              ['wireguard-go processes (both hosts) / their total VmRSS', `${R.wgProcs} / ${mib(R.wgRss)} MiB`],
              ['wireguard-go VmRSS per connection (two processes: mean per process x 2)', `${mib((2 * R.wgRss) / R.wgProcs)} MiB`],
              ['agents\' RSS per connection (both, after - before)', `${f1((R.rssA + R.rssB - R.rssA0 - R.rssB0) / M)} KiB`],
              [`teardown of ${M}`, `${f1(R.teardownMs / 1000)} s`],
            ],
          ),
        ]
      : []),
    '',
    `Targets: ${N} connections set up in under 10 s: ${L.setupMs < 10_000 ? 'met' : 'missed'} (${f1(L.setupMs / 1000)} s); agent RSS under 200 MB: ${L.rssMax < 200 * 1000 ? 'met' : 'missed'} (max ${mib(L.rssMax)} MiB); no connection lost: ${L.deletes === 0 && L.upAtEnd >= N ? 'met' : 'missed'}.`,
  ].join('\n');
  console.log(body);
  writeSection('scale', body);
});
