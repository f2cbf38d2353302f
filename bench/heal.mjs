// Over 400 lines in one file: the six cases share the hosts, agents, logs and probes set up in main().
// Heal and restart times. Three hosts (namespaces on a bridge), each running its own
// `nsm-agent run --cleanup-on-exit` from dist/ (own directory and stateDir, logLevel info, dev
// identities from one CA, maxTokenLifetime 6s as in test/e2e/heal.test.ts):
//   host-a  holds the connections (client namespace nsc): h-local = kernel://icmp-responder/nsm-1
//   host-b  endpoints icmp-b (service icmp-responder) and resel-1 (service resel)
//   host-c  the embedded registry (memory, expiration 5s) and endpoint resel-2 (service resel)
// Every case runs in each round (cases take turns, rounds repeat `runs` times), with a background
// `ping -D -i 0.02` through h-local's vWire (WireGuard, wireguard-go) from nsc:
//   1. local agent restart: kill -9 of host-a's agent, 300 ms, started again on the same directory;
//      from the new agent's readiness (gRPC health SERVING) to h-local UP in its Status again;
//   2. remote agent restart: the same for host-b (the endpoint host), h-local UP in host-b's Status;
//   3. registry restart: the same for host-c; from its readiness until icmp-b is found in it again;
//   4. `ip link set nsm-1 down` in nsc: until ping answers again;
//   5. wireguard-go of h-local on host-a killed (PID from Status): until ping answers again;
//   6. the endpoint serving h-resel = kernel://resel/nsm-2 removed from its host's agent.yaml and
//      reloaded (systemd socket, in-process) while the other resel endpoint exists: until h-resel
//      is UP on the other endpoint and its new address answers a ping; then the endpoint is put
//      back (reload) and h-resel disconnected.
// "Until ping answers again" = the reply time of the first answered echo after the first echo
// lost after the disruption (ping's own sequence numbers and -D timestamps; 0 if none was lost).
// Status is polled in-process over the control API's unix socket every 5 ms (as heal.test.ts).
//
// Usage (root): npm run build && node bench/heal.mjs [runs] [--logs DIR]
//   --logs DIR  keep the agents' logs there (default: in the temp dir, removed at the end)
import { createWriteStream, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ROOT, ip, requireRoot, run, sleep, until as poll } from '../test/harness/exec.mjs';
import { startAgent, writeAgentConfig } from '../test/harness/agent.mjs';
import { api, registryClient } from '../test/harness/clients.mjs';
import { startPinger } from '../test/harness/traffic.mjs';
import { args, TAG, pct, table, machine, versions, writeSection, date, mono } from './lib.mjs';
import { main } from './scope.mjs';

const grpc = requireRoot('@grpc/grpc-js');
const { viewStatus } = requireRoot(path.join(ROOT, 'dist/agent/cli/commands.js'));

const opt = args();
const RUNS = Number(opt._[0] ?? 10);
const P = `nsmh${TAG}`;
const INTERVAL = 20; // ms between echoes of the background ping
const SETTLE = 1000;
const PAUSE = 300; // between kill -9 and the new start, as heal.test.ts
/** Epoch milliseconds with sub-millisecond resolution (ping -D prints gettimeofday). */
const now = () => performance.timeOrigin + performance.now();
const T_START = now();

// ---------------------------------------------------------------------------------------------
// Control API over the unix sockets, a fresh client per call (survives restarts).

/** The agent's Status as the CLI shows it (viewStatus), or undefined if it does not answer. */
function statusOf(socket, deadlineMs = 1000) {
  return new Promise((resolve) => {
    const C = api().agent.nsmagent.v1.Agent;
    const c = new C(`unix://${socket}`, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 << 20 });
    c.Status({}, { deadline: Date.now() + deadlineMs }, (err, res) => {
      grpc.Client.prototype.close.call(c);
      resolve(err ? undefined : viewStatus(res));
    });
  });
}
const connIn = (view, clientId) => view?.connections.find((c) => c.clientId === clientId);

function agentCall(socket, method, req, deadlineMs = 30_000) {
  return new Promise((resolve, reject) => {
    const C = api().agent.nsmagent.v1.Agent;
    const c = new C(`unix://${socket}`, grpc.credentials.createInsecure());
    c[method](req, { deadline: Date.now() + deadlineMs }, (err, res) => {
      grpc.Client.prototype.close.call(c);
      err ? reject(err) : resolve(res);
    });
  });
}

/** `nsm-agent reload` without the CLI: one JSON line on the systemd socket, one answer line. */
function reload(ctlSocket) {
  return new Promise((resolve, reject) => {
    const s = net.connect(ctlSocket);
    let buf = '';
    s.setEncoding('utf8');
    s.on('connect', () => s.write(JSON.stringify({ op: 'reload' }) + '\n'));
    s.on('data', (d) => (buf += d));
    s.on('error', reject);
    s.on('close', () => {
      try {
        const r = JSON.parse(buf.split('\n')[0]);
        if (!r.ok) reject(new Error(`reload: ${r.code} ${r.message}`));
        else if (r.result?.errors?.length) reject(new Error(`reload: ${JSON.stringify(r.result.errors)}`));
        else resolve(r.result);
      } catch {
        reject(new Error(`reload: no answer (${buf})`));
      }
    });
  });
}

/** Polls every 5 ms unless told otherwise. */
const until = (probe, timeoutMs, stepMs = 5) => poll(probe, timeoutMs, stepMs);


/** The background ping through a vWire (test/harness/traffic.mjs), killed if the bench fails. */
function bgPing(scope, netns, dst) {
  const p = startPinger(netns, dst, INTERVAL);
  scope.defer(p.kill);
  return p;
}

// ---------------------------------------------------------------------------------------------
// wireguard-go processes in this bench's namespaces (by /proc/PID/ns/net).

function wgProcsIn(inodes) {
  const out = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) !== 'wireguard-go') continue;
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (rest[0] === 'Z') continue;
      const ino = Number(/net:\[(\d+)\]/.exec(readlinkSync(`/proc/${d}/ns/net`))?.[1]);
      if (inodes.has(ino)) out.push({ pid: Number(d), ppid: Number(rest[1]) });
    } catch {}
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

main(async (scope) => {
  const dir = scope.dir('nsmh-');
  const logDir = opt.logs ? path.resolve(String(opt.logs)) : path.join(dir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const mesh = await scope.hosts(3, P, 223);
  const nsc = mesh.netns('nsc');
  const nse = mesh.netns('nse');
  const nr1 = mesh.netns('nr1');
  const nr2 = mesh.netns('nr2');
  const inodes = new Set([mesh.underlay, ...mesh.hosts.map((h) => h.netns), nsc, nse, nr1, nr2].map((n) => statSync(`/run/netns/${n}`).ino));
  const wgAtStart = wgProcsIn(inodes).length;

  // --- agents -------------------------------------------------------------------------------
  const identity = { source: 'dev', dev: { caDir: path.join(dir, 'ca'), allowNonLoopback: true } };
  const common = { logLevel: 'info', maxTokenLifetime: '6s', identity };
  const [ha, hb, hc] = mesh.hosts;
  const registryURL = `tcp://${hc.ip}:5002`;
  const H = [
    { ...ha, config: { name: 'host-a', ...common, listen: { tcp: `${ha.ip}:5001` }, registry: { url: registryURL } } },
    {
      ...hb,
      config: {
        name: 'host-b',
        ...common,
        listen: { tcp: `${hb.ip}:5001` },
        registry: { url: registryURL },
        endpoints: [
          { name: 'icmp-b', services: ['icmp-responder'], cidr: '172.16.1.0/24', netns: nse },
          { name: 'resel-1', services: ['resel'], cidr: '172.16.5.0/24', netns: nr1 },
        ],
      },
    },
    {
      ...hc,
      config: {
        name: 'host-c',
        ...common,
        listen: { tcp: `${hc.ip}:5001` },
        registry: { url: 'embedded', expiration: '5s' },
        endpoints: [{ name: 'resel-2', services: ['resel'], cidr: '172.16.6.0/24', netns: nr2 }],
      },
    },
  ];
  for (const h of H) {
    h.dir = path.join(dir, h.name);
    h.socket = path.join(h.dir, 'agent.sock');
    h.ctl = path.join(h.dir, 'systemd.sock');
    h.logs = [];
    h.log = createWriteStream(path.join(logDir, `${h.name}.log`), { flags: 'a' });
    h.starts = 0;
  }
  const writeConfig = (h, cfg) => writeAgentConfig(h.dir, cfg);

  /** Stops every agent process of this bench in order (host-a first: it holds the connections). */
  let stoppedAll = false;
  const stopAgents = async () => {
    if (stoppedAll) return;
    stoppedAll = true;
    for (const h of H) await h.agent?.stop('SIGTERM', true);
    for (const h of H) await new Promise((r) => h.log.end(r));
  };
  // Runs after the agents' stop, before the namespaces go: wireguard-go left behind.
  scope.defer(() => {
    for (const w of wgProcsIn(inodes)) {
      console.error(`cleanup: wireguard-go ${w.pid} (ppid ${w.ppid}) left in a bench namespace: killed`);
      try {
        process.kill(w.pid, 'SIGKILL');
      } catch {}
    }
  });
  scope.defer(stopAgents);

  const stamp = () => `+${((now() - T_START) / 1000).toFixed(3)}s`;
  /** A line of host h's log, time-stamped. */
  const logLine = (h, text) => {
    const line = `${stamp()} ${h.name} ${text}`;
    h.logs.push(line);
    if (!h.log.writableEnded) h.log.write(line + '\n');
  };
  /** Starts (or starts again, on the same directory) host h's agent; resolves once it is SERVING. */
  async function start(h) {
    h.starts++;
    logLine(h, `==== start ${h.starts}`);
    const startedAt = now();
    try {
      // health asked every 5 ms: readyAt is when the agent became ready, within 5 ms
      h.agent = await startAgent(h.config, { dir: h.dir, netns: h.netns, onLine: (l) => logLine(h, l), readyTimeoutMs: 30_000, readyPollMs: 5, stopGraceMs: 20_000 });
    } catch (err) {
      throw new Error(`${h.name}: agent not serving:\n${h.logs.slice(-20).join('\n')}`, { cause: err });
    }
    const readyAt = now();
    logLine(h, `==== serving (pid ${h.agent.pid})`);
    return { startedAt, readyAt };
  }
  /** A line in every agent's log: what the bench did, when (to read the logs against). */
  const mark = (text) => {
    const line = `${stamp()} bench ${text}`;
    for (const h of H) {
      h.logs.push(line);
      if (!h.log.writableEnded) h.log.write(line + '\n');
    }
  };
  const kill9 = (h) => h.agent.stop('SIGKILL', true);

  await start(H[2]);
  await start(H[1]);
  await start(H[0]);
  const [A, B, C] = H;

  // --- the held connection and probes ---------------------------------------------------------
  await agentCall(A.socket, 'Connect', { url: 'kernel://icmp-responder/nsm-1', netns: nsc, id: 'h-local' });
  const first = connIn(await statusOf(A.socket), 'h-local');
  if (!first || first.tunnel?.type !== 'WIREGUARD') throw new Error(`h-local is not a WireGuard vWire: ${JSON.stringify(first)}`);
  const dst = first.dstIps[0].split('/')[0];
  const probe = await scope.prober(nsc); // 1 ms echo until the first reply
  await probe.ping(dst, 5_000);
  console.log(`h-local: ${first.srcIps[0]} -> ${dst} over ${first.tunnel.type} (wireguard-go ${first.tunnel.device?.pid}); ${RUNS} rounds of 6 cases`);

  /** Before each run: h-local UP on host-a and host-b and answering. */
  async function steady() {
    const ok = await until(async () => {
      const a = connIn(await statusOf(A.socket), 'h-local');
      const b = connIn(await statusOf(B.socket), 'h-local');
      return a?.state === 'UP' && b?.state === 'UP' && a;
    }, 15_000, 50);
    if (!ok) return undefined;
    try {
      await probe.ping(dst, 3_000);
    } catch {
      return undefined;
    }
    return ok;
  }

  const anomalies = [];
  const wgCounts = [];
  function anomaly(what, why, from) {
    const lines = H.flatMap((h) => h.logs.slice(from[h.name]))
      .filter((l) => /level=(warn|error)|heal|taken back|reap|ready|==== start|re-establish|resel|liveness|recovered|adopt/i.test(l))
      .sort((x, y) => parseFloat(x.slice(1)) - parseFloat(y.slice(1)));
    const text = `${what}: ${why}`;
    anomalies.push({ text, lines });
    console.error(`\n!! ${text}\n${lines.slice(-40).join('\n')}\n`);
  }
  const logMarks = () => Object.fromEntries(H.map((h) => [h.name, h.logs.length]));

  const res = { local: [], remote: [], registry: [], linkdown: [], wgkill: [], reselect: [] };

  // 1 / 2 / 3: kill -9 of host i's agent, started again on the same directory.
  async function restartCase(key, h, label) {
    const marks = logMarks();
    const before = connIn(await statusOf(A.socket), 'h-local');
    const ping = bgPing(scope, nsc, dst);
    await sleep(500);
    const t0 = now();
    mark(`${key}: kill -9 ${h.name}`);
    await kill9(h);
    await sleep(PAUSE);
    const { readyAt } = await start(h);
    mark(`${key}: ${h.name} serving`);
    let servedAt;
    if (key === 'registry') {
      // back in the registry: host-b's endpoint registered again
      const reg = registryClient(C.socket, 1000);
      servedAt = await until(async () => (await reg.find({ name: 'icmp-b' }).catch(() => [])).some((r) => !r.deleted) && now(), 10_000);
      reg.dispose();
    } else {
      servedAt = await until(async () => connIn(await statusOf(h.socket), 'h-local')?.state === 'UP' && now(), 10_000);
    }
    await sleep(key === 'registry' ? 3000 : 500);
    const r = await ping.stop();
    const after = connIn(await statusOf(A.socket), 'h-local');
    const sample = { recoveryMs: servedAt ? servedAt - readyAt : NaN, downMs: readyAt - t0, lost: r.lost, gapMs: r.longestGapMs, sent: r.sent };
    if (key === 'local') sample.adopted = after?.tunnel?.device?.pid === before?.tunnel?.device?.pid;
    if (key === 'remote') sample.sameAddrs = JSON.stringify(after?.srcIps) === JSON.stringify(before?.srcIps) && JSON.stringify(after?.dstIps) === JSON.stringify(before?.dstIps);
    res[key].push(sample);
    const why = [];
    if (!servedAt) why.push(key === 'registry' ? 'icmp-b not back in the registry within 10 s' : 'connection not served again within 10 s');
    else if (key !== 'registry' && sample.recoveryMs > 1000) why.push(`recovery ${sample.recoveryMs.toFixed(0)} ms after readiness`);
    if (r.lost) why.push(`${r.lost}/${r.sent} echoes lost, longest gap ${r.longestGapMs} ms`);
    if (sample.adopted === false) why.push(`wireguard-go not taken back (pid ${before?.tunnel?.device?.pid} -> ${after?.tunnel?.device?.pid})`);
    if (sample.sameAddrs === false) why.push('addresses changed');
    if (why.length) anomaly(label, why.join('; '), marks);
    return sample;
  }

  // 4 / 5: a disruption on the data path; until ping answers again.
  async function dataCase(key, label, disrupt) {
    const marks = logMarks();
    const ping = bgPing(scope, nsc, dst);
    await sleep(500);
    const t0 = now();
    mark(`${key}: disruption`);
    const info = await disrupt();
    await until(() => ping.recovery(t0), 10_000, 20);
    await sleep(500);
    const r = await ping.stop(t0);
    mark(`${key}: ping answered again ${Number.isFinite(r.recoveryMs) ? r.recoveryMs.toFixed(0) + ' ms' : 'never'} after the disruption`);
    const sample = { recoveryMs: r.recoveryMs, lost: r.lost, gapMs: r.longestGapMs, sent: r.sent, ...info };
    res[key].push(sample);
    const why = [];
    if (!(r.recoveryMs <= 1000)) why.push(`ping answered again ${Number.isFinite(r.recoveryMs) ? r.recoveryMs.toFixed(0) + ' ms' : 'never (10 s)'} after the disruption`);
    if (r.longestGapMs >= 1000) why.push(`longest gap ${r.longestGapMs} ms`);
    if (why.length) anomaly(label, why.join('; '), marks);
    return sample;
  }

  // 6: the serving endpoint removed while the other one exists; rounds alternate between
  // removing host-c's (resel-2) and host-b's (resel-1).
  const endpointHost = { 'resel-1': B, 'resel-2': C };
  const drop = (h, name) => writeConfig(h, { ...h.config, endpoints: h.config.endpoints.filter((e) => e.name !== name) });
  /** The endpoint back in its host's agent.yaml, reloaded, and found in the registry again. */
  async function putBack(name) {
    const owner = endpointHost[name];
    writeConfig(owner, owner.config);
    await reload(owner.ctl);
    const reg = registryClient(C.socket, 1000);
    const back = await until(async () => (await reg.find({ name }).catch(() => [])).some((r) => !r.deleted), 10_000, 20);
    reg.dispose();
    if (!back) throw new Error(`${name} not back in the registry within 10 s`);
  }
  async function reselectCase(round) {
    const marks = logMarks();
    const target = round % 2 ? 'resel-1' : 'resel-2';
    await agentCall(A.socket, 'Connect', { url: 'kernel://resel/nsm-2', netns: nsc, id: 'h-resel' });
    let c0 = connIn(await statusOf(A.socket), 'h-resel');
    if (c0.endpoint !== target) {
      // steered onto `target` (not timed): the other endpoint removed until it moved, then put back
      const other = c0.endpoint;
      drop(endpointHost[other], other);
      await reload(endpointHost[other].ctl);
      c0 = await until(async () => {
        const x = connIn(await statusOf(A.socket), 'h-resel');
        return x?.state === 'UP' && x.endpoint === target && x;
      }, 10_000, 20);
      await putBack(other);
      if (!c0) throw new Error(`h-resel did not move to ${target}`);
      await sleep(SETTLE);
    }
    const firstEp = c0.endpoint;
    const owner = endpointHost[firstEp];
    await probe.ping(c0.dstIps[0].split('/')[0], 3_000);
    drop(owner, firstEp);
    const t0 = mono();
    mark(`reselect: ${firstEp} dropped from ${owner.name}'s agent.yaml, reload`);
    let moved;
    let pingAt;
    try {
      await reload(owner.ctl);
      moved = await until(async () => {
        const x = connIn(await statusOf(A.socket), 'h-resel');
        return x?.state === 'UP' && x.endpoint !== firstEp && x;
      }, 10_000);
      const upAt = mono();
      if (moved) pingAt = await probe.ping(moved.dstIps[0].split('/')[0], 5_000).catch(() => undefined);
      mark(`reselect: UP on ${moved?.endpoint} after ${(upAt - t0).toFixed(0)} ms, pinging after ${pingAt ? (pingAt - t0).toFixed(0) + ' ms' : 'never'}`);
      const sample = { recoveryMs: pingAt ? pingAt - t0 : NaN, upMs: moved ? upAt - t0 : NaN, from: firstEp, to: moved?.endpoint };
      res.reselect.push(sample);
      const why = [];
      if (!moved) why.push('not UP on the other endpoint within 10 s');
      else if (!pingAt) why.push('new address does not answer');
      else if (sample.recoveryMs > 2000) why.push(`reselected and pinging after ${sample.recoveryMs.toFixed(0)} ms`);
      if (why.length) anomaly(`endpoint ${firstEp} removed`, why.join('; '), marks);
      return sample;
    } finally {
      await putBack(firstEp);
      await agentCall(A.socket, 'Disconnect', { id: 'h-resel' });
    }
  }

  const fmt = (x) => (Number.isFinite(x) ? x.toFixed(0) : '-');
  for (let round = 0; round < RUNS; round++) {
    const cases = [
      ['local', () => restartCase('local', A, 'local agent restart (kill -9 host-a)'), (s) => `ready->served ${fmt(s.recoveryMs)} ms, lost ${s.lost}, taken back ${s.adopted}`],
      ['remote', () => restartCase('remote', B, 'remote agent restart (kill -9 host-b)'), (s) => `ready->served ${fmt(s.recoveryMs)} ms, lost ${s.lost}`],
      ['registry', () => restartCase('registry', C, 'registry restart (kill -9 host-c)'), (s) => `ready->icmp-b registered ${fmt(s.recoveryMs)} ms, lost ${s.lost}`],
      [
        'linkdown',
        () => dataCase('linkdown', 'nsm-1 down in the client namespace', async () => (await ip(['-n', nsc, 'link', 'set', 'nsm-1', 'down']), {})),
        (s) => `answered again ${fmt(s.recoveryMs)} ms, gap ${s.gapMs} ms, lost ${s.lost}`,
      ],
      [
        'wgkill',
        () =>
          dataCase('wgkill', 'wireguard-go of h-local killed', async () => {
            const pid = connIn(await statusOf(A.socket), 'h-local')?.tunnel?.device?.pid;
            if (!pid) throw new Error('no wireguard-go pid in status');
            process.kill(pid, 'SIGKILL');
            return { pid };
          }),
        (s) => `answered again ${fmt(s.recoveryMs)} ms, gap ${s.gapMs} ms, lost ${s.lost}`,
      ],
      ['reselect', () => reselectCase(round), (s) => `${s.from} -> ${s.to}: UP ${fmt(s.upMs)} ms, pinging ${fmt(s.recoveryMs)} ms`],
    ];
    for (const [key, run, show] of cases) {
      if (!(await steady())) {
        anomaly(`before ${key} (round ${round + 1})`, 'h-local not UP and answering within 15 s', logMarks());
        throw new Error('h-local did not come back; giving up');
      }
      mark(`round ${round + 1}: ${key}`);
      const s = await run();
      console.log(`round ${round + 1} ${key.padEnd(8)} ${show(s)}`);
      await sleep(SETTLE);
    }
    wgCounts.push(wgProcsIn(inodes).length);
  }

  // --- end: stop the agents (their --cleanup-on-exit stop removes their vWires) ----------------
  await agentCall(A.socket, 'Disconnect', { id: 'h-local' }).catch(() => {});
  await stopAgents();
  await sleep(300);
  const left = wgProcsIn(inodes);
  for (const w of left) {
    try {
      process.kill(w.pid, 'SIGKILL');
    } catch {}
  }

  // --- report -------------------------------------------------------------------------------
  const col = (xs, k) => xs.map((s) => s[k]).filter((x) => x !== undefined && !Number.isNaN(x));
  const p50 = (xs) => pct(xs, 50);
  const mx = (xs) => (xs.length ? Math.max(...xs) : NaN);
  const f = (x) => (Number.isFinite(x) ? x.toFixed(0) : x === Infinity ? 'never' : '-');
  const row = (name, xs, { rec = true, loss = true } = {}) => {
    const r = col(xs, 'recoveryMs');
    const l = col(xs, 'lost');
    const g = col(xs, 'gapMs');
    return [name, xs.length, rec ? f(p50(r)) : '-', rec ? f(mx(r)) : '-', loss ? f(p50(l)) : 'n/a', loss ? f(mx(l)) : 'n/a', loss ? f(p50(g)) : 'n/a', loss ? f(mx(g)) : 'n/a'];
  };
  const heads = ['case', 'runs', 'recovery p50 ms', 'recovery max ms', 'echoes lost p50', 'lost max', 'longest gap p50 ms', 'gap max ms'];
  const rows = [
    row('1. local agent restart (kill -9 host-a)', res.local),
    row('2. remote agent restart (kill -9 host-b)', res.remote),
    row('3. registry restart (kill -9 host-c)', res.registry),
    row('4. `ip link set nsm-1 down` (client ns)', res.linkdown),
    row('5. wireguard-go of the connection killed', res.wgkill),
    row('6. serving endpoint removed (reload)', res.reselect, { loss: false }),
  ];
  const down = (xs) => f(p50(col(xs, 'downMs')));
  const adopted = res.local.filter((s) => s.adopted).length;
  const same = res.remote.filter((s) => s.sameAddrs).length;
  const up6 = f(p50(col(res.reselect, 'upMs')));
  const by6 = (ep) => f(p50(col(res.reselect.filter((s) => s.from === ep), 'recoveryMs')));
  const load = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  const body = [
    '## Heal and restart times',
    '',
    `Command: \`node bench/heal.mjs ${RUNS}\` (after \`npm run build\`; part of \`npm run bench\`), ${date()}.`,
    `Machine: ${machine()}, ${await versions(['wireguard-go'])}, ${(await run('ping', ['-V']).catch(() => '?')).trim().split('\n')[0]}. Load average at the end: ${load}.`,
    '',
    'Three hosts (namespaces on a bridge), each running `nsm-agent run --cleanup-on-exit` from dist/ with its own',
    'directory and stateDir, `maxTokenLifetime: 6s`, heal on its defaults; host-a holds `kernel://icmp-responder/nsm-1`',
    "(a WireGuard vWire, wireguard-go, to host-b's endpoint), host-c serves the registry (memory, expiration 5s) and",
    "the second endpoint of service `resel` (the first is host-b's). All six cases are measured side by side in one run:",
    `they take turns in each of ${RUNS} rounds, 1 s of settling and a check that the connection is UP on both hosts and`,
    'answers before each. Each case (but 6) runs a background `ping -D -i 0.02` through the vWire from the client',
    'namespace, started 0.5 s before the disruption; echoes lost and the longest run of lost echoes (x 20 ms) are its.',
    'Recovery, per case:',
    `1. host-a's agent killed with SIGKILL, started again 300 ms later on the same directory: from the new agent's`,
    "   readiness (gRPC health SERVING on its unix socket) to the connection UP in its Status again (polled in-process",
    `   every 5 ms). Kill to readiness p50 ${down(res.local)} ms; wireguard-go taken back (same PID) in ${adopted} of ${res.local.length} runs.`,
    `2. the same for host-b's agent (the endpoint host): until host-b's Status shows the connection UP again. Kill to`,
    `   readiness p50 ${down(res.remote)} ms; same addresses afterwards in ${same} of ${res.remote.length} runs.`,
    `3. the same for host-c's agent (the registry): until host-b's endpoint is found in the registry again (Find by`,
    `   name on host-c's socket). Kill to readiness p50 ${down(res.registry)} ms.`,
    '4. and 5. from the disruption (`ip -n NSC link set nsm-1 down`; SIGKILL to the wireguard-go PID in Status) until',
    '   ping answers again: the reply time of the first answered echo after the first echo lost after the disruption',
    "   (ping's sequence numbers and -D timestamps).",
    `6. the endpoint serving a second connection (\`kernel://resel/nsm-2\`) dropped from its host's agent.yaml and reloaded`,
    "   (the systemd socket's reload, in-process), until the connection is UP on the other endpoint and its new",
    `   address answers a ping (1 ms echoes); UP alone p50 ${up6} ms. Rounds alternate the endpoint removed: host-c's`,
    `   (p50 ${by6('resel-2')} ms) and host-b's (p50 ${by6('resel-1')} ms). The endpoint is put back and the connection closed after each run.`,
    '',
    table(heads, rows),
    '',
    `wireguard-go processes in the bench's namespaces after each round: ${wgCounts.join(', ')}; left after the agents' stop: ${left.length}.`,
    `Targets: no echo lost on restarts (local ${mx(col(res.local, 'lost')) === 0 ? 'met' : 'missed'}, remote ${mx(col(res.remote, 'lost')) === 0 ? 'met' : 'missed'}, registry ${mx(col(res.registry, 'lost')) === 0 ? 'met' : 'missed'}); ` +
      `remote restart recovered under 1 s: ${mx(col(res.remote, 'recoveryMs')) < 1000 ? 'met' : 'missed'}; link down and wireguard-go healed under 1 s: ` +
      `${mx(col(res.linkdown, 'recoveryMs')) < 1000 ? 'met' : 'missed'} / ${mx(col(res.wgkill, 'recoveryMs')) < 1000 ? 'met' : 'missed'}; reselected within 2 s: ${mx(col(res.reselect, 'recoveryMs')) < 2000 ? 'met' : 'missed'} (max values).`,
  ].join('\n');
  console.log('\n' + body);
  if (anomalies.length) {
    console.log(`\n${anomalies.length} anomal${anomalies.length === 1 ? 'y' : 'ies'} (agent log lines above, on stderr):`);
    for (const a of anomalies) console.log(`  - ${a.text}`);
  }
  if (opt.logs) console.log(`agent logs: ${logDir}`);
  writeSection('heal', body);
});
