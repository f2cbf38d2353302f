// Shared benchmark helpers: percentiles, a table printer, and BENCHMARKS.md sections.
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const MD = `${ROOT}BENCHMARKS.md`;

export function pct(samples, p) {
  const s = [...samples].sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export function summary(samples) {
  return { n: samples.length, p50: pct(samples, 50), p99: pct(samples, 99), min: Math.min(...samples), max: Math.max(...samples) };
}

export const ms = (x) => (Number.isFinite(x) ? x.toFixed(2) : '-');

export function table(headers, rows) {
  const w = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (c) => '| ' + c.map((x, i) => String(x).padEnd(w[i])).join(' | ') + ' |';
  return [line(headers), '|' + w.map((n) => '-'.repeat(n + 2)).join('|') + '|', ...rows.map(line)].join('\n');
}

export function machine() {
  const kernel = os.release();
  const cpu = os.cpus()[0]?.model ?? '?';
  let iproute = '?';
  try {
    iproute = execFileSync('ip', ['-V'], { encoding: 'utf8' }).trim();
  } catch {}
  return `${os.cpus().length} x ${cpu}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${kernel}, Node ${process.version}, ${iproute}`;
}

/** Replaces (or appends) the section between <!-- bench:NAME --> markers in BENCHMARKS.md. */
export function writeSection(name, body) {
  const start = `<!-- bench:${name} -->`;
  const end = `<!-- /bench:${name} -->`;
  const block = `${start}\n${body.trim()}\n${end}`;
  let text = existsSync(MD) ? readFileSync(MD, 'utf8') : '# Benchmarks\n\nMeasured with `npm run bench` (or the command named in each section) as root on the machine named there. Medians and ratios are taken side by side in one run; absolute times vary between runs on these shared 2-core hosts.\n';
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  if (i >= 0 && j > i) text = text.slice(0, i) + block + text.slice(j + end.length);
  else text = text.trimEnd() + '\n\n' + block + '\n';
  writeFileSync(MD, text);
}

// ---------------------------------------------------------------------------------------------
// Hosts, processes and clean-up shared by the benchmarks (issue 7).

import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const median = (xs) => pct(xs, 50);
/** CLOCK_MONOTONIC in milliseconds (the clock python's time.monotonic_ns and C use too). */
export const mono = () => Number(process.hrtime.bigint()) / 1e6;
export const BIN = `${ROOT}bin/nsm-agent`;

/** Runs a command; resolves with its stdout, rejects with its stderr. */
export function sh(cmd, args, input, opts = {}) {
  return new Promise((resolve, reject) => {
    const p = execFile(cmd, args, { maxBuffer: 1 << 26, ...opts }, (err, stdout, stderr) =>
      err ? reject(new Error(`${cmd} ${args.join(' ')}: ${String(stderr).trim() || err.message}`)) : resolve(stdout),
    );
    if (input !== undefined) p.stdin.end(input);
  });
}
export const ip = (args, input) => sh('ip', args, input);

/** A short tag unique to this run (namespace names, wireguard-go device names are global). */
export const TAG = (process.pid % 10000).toString(36);

/** Command-line flags: `--name value` / `--flag`; positional arguments in `_`. */
export function args(argv = process.argv.slice(2)) {
  const out = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) out._.push(a);
    else if (a.includes('=')) out[a.slice(2, a.indexOf('='))] = a.slice(a.indexOf('=') + 1);
    else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) out[a.slice(2)] = argv[++i];
    else out[a.slice(2)] = true;
  }
  return out;
}

/** "5m", "30s", "1500ms" -> milliseconds. */
export function duration(text) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(String(text));
  if (!m) throw new Error(`bad duration ${text}`);
  return Number(m[1]) * { ms: 1, s: 1e3, m: 60e3, h: 3600e3 }[m[2] ?? 's'];
}

/**
 * Everything a benchmark makes, removed in reverse order by close() even on failure:
 * namespaces, processes (by PID: SIGTERM, then SIGKILL after 3 s), temp dirs, anything else.
 */
export class Scope {
  #undo = [];
  #closed = false;
  defer(fn) {
    this.#undo.push(fn);
    return fn;
  }
  async netns(name) {
    await ip(['netns', 'add', name]);
    this.defer(() => ip(['netns', 'del', name]).catch(() => {}));
    await ip(['-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }
  dir(prefix = 'nsmb-') {
    const d = mkdtempSync(path.join(os.tmpdir(), prefix));
    this.defer(() => rmSync(d, { recursive: true, force: true }));
    return d;
  }
  /** A child process (or a bare PID) to stop at close. Returns it. */
  proc(p) {
    this.defer(() => stopPid(p));
    return p;
  }
  async close() {
    if (this.#closed) return;
    this.#closed = true;
    for (const fn of this.#undo.reverse()) {
      try {
        await fn();
      } catch (err) {
        console.error('cleanup:', err.message);
      }
    }
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; for a ChildProcess waits for its exit (reaped). */
export async function stopPid(p, graceMs = 3000) {
  const child = typeof p === 'object' ? p : undefined;
  const pid = child ? child.pid : p;
  if (!pid) return;
  const done = () => (child ? child.exitCode !== null || child.signalCode !== null : !alive(pid));
  if (done()) return;
  const exited = child ? new Promise((r) => child.once('exit', r)) : undefined;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const t0 = Date.now();
  while (!done() && Date.now() - t0 < graceMs) await Promise.race([exited, sleep(20)].filter(Boolean));
  if (!done()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
    if (exited) await exited;
  }
}

/**
 * Runs `fn(scope)` and always closes the scope: on success, on error and on SIGINT/SIGTERM.
 * Sets the exit code.
 */
export function main(fn) {
  const scope = new Scope();
  const onSignal = (sig) => {
    console.error(`\n${sig}: cleaning up`);
    scope.close().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  (async () => {
    if (process.getuid() !== 0) throw new Error('run as root');
    // An agent started in this namespace reserves its WireGuard port range here (the sysctl is
    // per namespace); the host's value is put back at the end, as the tests' leak check does.
    const reserved = '/proc/sys/net/ipv4/ip_local_reserved_ports';
    const before = readFileSync(reserved, 'utf8');
    scope.defer(() => writeFileSync(reserved, before.trim() || '\n'));
    await fn(scope);
  })()
    .catch((err) => {
      console.error(err);
      process.exitCode = 1;
    })
    .finally(async () => {
      await scope.close();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    });
}

/**
 * N hosts on one machine: an underlay namespace with a bridge, and per host a namespace with
 * eth0 on the bridge at 10.<net>.0.<i+1>/24 (as test/helpers/hosts.ts builds them).
 */
export async function buildHosts(scope, n, prefix, net = 223) {
  const ul = await scope.netns(`${prefix}-ul`);
  await ip(['-n', ul, 'link', 'add', 'br0', 'type', 'bridge']);
  await ip(['-n', ul, 'link', 'set', 'br0', 'up']);
  const hosts = [];
  for (let i = 0; i < n; i++) {
    const name = String.fromCharCode(97 + i);
    const ns = await scope.netns(`${prefix}-${name}`);
    const addr = `10.${net}.0.${i + 1}`;
    await ip(['link', 'add', 'eth0', 'netns', ns, 'type', 'veth', 'peer', 'name', `p${i}`, 'netns', ul]);
    await ip(['-n', ul, 'link', 'set', `p${i}`, 'master', 'br0', 'up']);
    await ip(['-n', ns, '-batch', '-'], `addr add ${addr}/24 dev eth0\nlink set eth0 up\nroute add default dev eth0\n`);
    hosts.push({ name, ns, ip: addr });
  }
  return hosts;
}

/**
 * Starts `nsm-agent run` (inside `netns` if given) with `config` (merged over a bench default:
 * logLevel warn, own stateDir and socket in `dir`). Resolves once it serves on its socket
 * unless `wait: false`. The process is stopped by PID when the scope closes.
 */
export async function startAgent(scope, { dir, name = 'bench', netns, config = {}, env, wait = true, nodeArgs = [] }) {
  const YAML = require('yaml');
  // each agent its own directory: the runtime dir beside the socket holds its control socket and units
  const own = path.join(dir, name);
  const socket = path.join(own, 'agent.sock');
  const file = path.join(own, 'agent.yaml');
  const stateDir = path.join(own, 'state');
  mkdirSync(stateDir, { recursive: true });
  writeFileSync(file, YAML.stringify({ name, logLevel: 'warn', stateDir, ...config, listen: { unix: socket, ...(config.listen ?? {}) } }));
  // BENCH_AGENT_NODE_ARGS: node options for every agent a benchmark starts, e.g. to profile them:
  // BENCH_AGENT_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' node bench/remote.mjs 100
  const extra = (process.env.BENCH_AGENT_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const argv = [...extra, ...nodeArgs, BIN, 'run', '--config', file, '--cleanup-on-exit'];
  // `ip netns exec` execs in place: proc.pid is the agent's own PID.
  const proc = netns
    ? spawn('ip', ['netns', 'exec', netns, process.execPath, ...argv], { stdio: ['ignore', 'inherit', 'inherit'], env: env ?? process.env })
    : spawn(process.execPath, argv, { stdio: ['ignore', 'inherit', 'inherit'], env: env ?? process.env });
  scope.proc(proc);
  const agent = { socket, file, proc, pid: proc.pid, stop: () => stopPid(proc, 20_000) };
  if (wait) await waitServing(socket, proc);
  return agent;
}

/** Waits until a gRPC server answers on the unix socket (or the process exits). */
export async function waitServing(socket, proc, timeoutMs = 30_000) {
  const grpc = require('@grpc/grpc-js');
  const t0 = Date.now();
  for (;;) {
    if (proc && (proc.exitCode !== null || proc.signalCode !== null)) throw new Error(`agent exited (${proc.exitCode ?? proc.signalCode}) before serving on ${socket}`);
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
    if (Date.now() - t0 > timeoutMs) throw new Error(`agent at ${socket} did not start`);
    await sleep(20);
  }
}

function promisifyCall(client, method, deadlineMs) {
  return (req) =>
    new Promise((resolve, reject) => client[method](req, { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(err) : resolve(res))));
}

/** The bench clients' NSM Request: a KERNEL vWire for `service` into `netns`, named `ifname`. */
function kernelRequest(id, service, netns, ifname) {
  return {
    connection: { id, network_service: service },
    mechanism_preferences: [{ cls: 'LOCAL', type: 'KERNEL', parameters: { name: ifname, inodeURL: `file:///run/netns/${netns}` } }],
  };
}

/** NSM NetworkService client on a unix socket (or host:port). */
export function nsClient(target, deadlineMs = 60_000) {
  const grpc = require('@grpc/grpc-js');
  const { api } = require(`${ROOT}dist/api/index.js`);
  const C = api().ns.networkservice.NetworkService;
  const c = new C(target.includes('/') ? `unix://${target}` : target, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 << 20 });
  const request = promisifyCall(c, 'Request', deadlineMs);
  return {
    /** Request a KERNEL vWire for `service` into `netns` named `ifname`. */
    request: (id, service, netns, ifname) => request(kernelRequest(id, service, netns, ifname)),
    raw: request,
    close: promisifyCall(c, 'Close', deadlineMs),
    // the generated client's own close() is the Close RPC
    dispose: () => grpc.Client.prototype.close.call(c),
  };
}

/**
 * The same NSM Request as nsClient's, from a client without a gRPC library: node:http2 on the
 * unix socket, the message serialized and framed (5-byte gRPC prefix) per call, the answer
 * checked (grpc-status, in the trailers or a trailers-only answer) and deserialized. The wire
 * is the same as grpc-js's; what is left out is grpc-js's own per-call work in the client
 * process (channel, interceptors, call stack), which took ~0.7 ms of a local connect here after
 * the client had idled (bench/connect-local.mjs) and which a Go client does not have.
 */
export function h2NsClient(socket, deadlineMs = 60_000) {
  const http2 = require('node:http2');
  const net = require('node:net');
  const { api } = require(`${ROOT}dist/api/index.js`);
  const method = api().ns.networkservice.NetworkService.service.Request;
  const session = http2.connect('http://localhost', { createConnection: () => net.connect(socket) });
  session.on('error', () => {}); // each call sees its stream's error
  const call = (req) =>
    new Promise((resolve, reject) => {
      const body = method.requestSerialize(req);
      const frame = Buffer.alloc(5 + body.length);
      frame.writeUInt32BE(body.length, 1);
      body.copy(frame, 5);
      const s = session.request({
        ':method': 'POST',
        ':path': method.path,
        'content-type': 'application/grpc',
        te: 'trailers',
        'grpc-timeout': `${deadlineMs}m`,
      });
      const chunks = [];
      let status;
      let message = '';
      const grpcStatus = (h) => {
        if (h['grpc-status'] === undefined) return;
        status = h['grpc-status'];
        message = decodeURIComponent(String(h['grpc-message'] ?? ''));
      };
      s.on('response', grpcStatus); // trailers-only answer (an error)
      s.on('trailers', grpcStatus);
      s.on('data', (d) => chunks.push(d));
      s.on('error', reject);
      s.on('end', () => {
        if (status !== '0') return reject(new Error(`grpc status ${status}: ${message}`));
        const b = Buffer.concat(chunks);
        if (b.length < 5 || b.readUInt32BE(1) !== b.length - 5) return reject(new Error(`bad gRPC answer (${b.length} bytes)`));
        resolve(method.responseDeserialize(b.subarray(5)));
      });
      s.end(frame);
    });
  return {
    /** Request a KERNEL vWire for `service` into `netns` named `ifname` (as nsClient's). */
    request: (id, service, netns, ifname) => call(kernelRequest(id, service, netns, ifname)),
    dispose: () => session.close(),
  };
}

/**
 * The same NSM Request as nsClient's, from a compiled client: bench/floor/grpc-call.c
 * (libnghttp2, one HTTP/2 connection), standing where NSM's own Go clients would. The request is
 * serialized and the answer deserialized here, outside the timing (a few microseconds in a
 * compiled client); `ms` is the call as timed inside the C program, from the request's first
 * byte to the server's trailers read. `bin` is the compiled grpc-call (compileC).
 */
export function cNsClient(scope, bin, socket) {
  const { api } = require(`${ROOT}dist/api/index.js`);
  const method = api().ns.networkservice.NetworkService.service.Request;
  const proc = lineProc(scope, bin, [socket]);
  return {
    /** Request a KERNEL vWire (as nsClient's); resolves with the answer and the call's time. */
    request: async (id, service, netns, ifname) => {
      const req = kernelRequest(id, service, netns, ifname);
      const line = await proc.send(`r ${method.path} ${method.requestSerialize(req).toString('hex')}`);
      const [us, answer] = line.split(' ');
      if (!/^[0-9.]+$/.test(us) || answer === undefined) throw new Error(`grpc-call: ${line}`);
      return { conn: method.responseDeserialize(Buffer.from(answer, 'hex')), ms: Number(us) / 1000 };
    },
  };
}

/** The agent's own control API (what `nsm-agent status|connect|disconnect` use). */
export function agentClient(socket, deadlineMs = 120_000) {
  const grpc = require('@grpc/grpc-js');
  const { api } = require(`${ROOT}dist/api/index.js`);
  const C = api().agent.nsmagent.v1.Agent;
  const c = new C(`unix://${socket}`, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 256 << 20 });
  return {
    status: () => promisifyCall(c, 'Status', deadlineMs)({}),
    connect: promisifyCall(c, 'Connect', deadlineMs),
    disconnect: promisifyCall(c, 'Disconnect', deadlineMs),
    dispose: () => c.close(),
  };
}

/** VmRSS of a process in KiB (0 if gone). */
export function rssKiB(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

const CLK_TCK = 100; // sysconf(_SC_CLK_TCK) on Linux/x86-64 (getconf CLK_TCK)
/** utime + stime of a process, in milliseconds of CPU. */
export function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK; // fields 14 and 15 of stat(5)
}

/** Processes whose parent is `ppid` (optionally only those with comm `comm`). */
export function childrenOf(ppid, comm) {
  const out = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (parent === ppid && (!comm || name === comm)) out.push(Number(d));
    } catch {}
  }
  return out;
}

/** PIDs whose command line is exactly `argv` (e.g. a daemonized wireguard-go for our device). */
export function pidsByArgv(argv) {
  const want = argv.join('\0');
  const out = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0$/, '');
      if (cmd === want || cmd.endsWith(`/${want}`)) out.push(Number(d));
    } catch {}
  }
  return out;
}

/** Compiles bench/floor/<name>.c with cc into a temp dir of the scope; returns the binary's path. */
export async function compileC(scope, name, libs = []) {
  const dir = scope.dir('nsmb-cc-');
  const out = path.join(dir, name);
  await sh('cc', ['-O2', '-Wall', '-o', out, `${ROOT}bench/floor/${name}.c`, ...libs.map((l) => `-l${l}`)]);
  return out;
}

/** A long-lived line-oriented helper process: send(line) resolves with its next output line. */
export function lineProc(scope, cmd, argv, opts = {}) {
  const p = scope.proc(spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'inherit'], ...opts }));
  let buf = '';
  const lines = [];
  const waiters = [];
  p.stdout.setEncoding('utf8');
  p.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = waiters.shift();
      if (w) w.resolve(line);
      else lines.push(line);
    }
  });
  p.once('exit', (code) => {
    for (const w of waiters.splice(0)) w.reject(new Error(`${cmd} ${argv.join(' ')} exited (${code})`));
  });
  const next = () =>
    lines.length ? Promise.resolve(lines.shift()) : new Promise((resolve, reject) => waiters.push({ resolve, reject }));
  return {
    proc: p,
    next,
    async send(line) {
      p.stdin.write(line + '\n');
      return next();
    },
  };
}

/**
 * test/harness/probe.py in `netns`: `ping(addr, timeoutMs)` sends ICMP echo every ms from the
 * namespace until the first reply; resolves with the CLOCK_MONOTONIC time (ms) of that reply,
 * or rejects on timeout.
 */
export async function pinger(scope, netns) {
  const lp = lineProc(scope, 'ip', ['netns', 'exec', netns, 'python3', `${ROOT}test/harness/probe.py`, 'ping']);
  if ((await lp.next()) !== 'ready') throw new Error('probe did not start');
  return {
    async ping(addr, timeoutMs = 10_000) {
      const line = await lp.send(`${addr} ${timeoutMs}`);
      const [what, ns] = line.split(' ');
      if (what !== 'ok') throw new Error(`no ping reply from ${addr} within ${timeoutMs} ms (in ${netns})`);
      return Number(ns) / 1e6;
    },
  };
}

/**
 * A unix datagram socket at `file` (what systemd's NOTIFY_SOCKET is): `next()` resolves with
 * { t (CLOCK_MONOTONIC ms), msg } for each datagram.
 */
export async function notifySocket(scope, file) {
  const lp = lineProc(scope, 'python3', [`${ROOT}test/harness/probe.py`, 'notify', file]);
  if ((await lp.next()) !== 'ready') throw new Error('notify listener did not start');
  return {
    async next() {
      const line = await lp.next();
      const i = line.indexOf(' ');
      return { t: Number(line.slice(0, i)) / 1e6, msg: line.slice(i + 1) };
    },
  };
}

/** iperf3 TCP from `from` to `to` at `addr` for `seconds`; bits per second received. */
export async function iperf(scope, from, to, addr, seconds) {
  const server = scope.proc(spawn('ip', ['netns', 'exec', to, 'iperf3', '-s', '-1', '-B', addr], { stdio: 'ignore' }));
  try {
    for (let t = 0; ; t++) {
      try {
        const out = await sh('ip', ['netns', 'exec', from, 'iperf3', '-c', addr, '-t', String(seconds), '-J']);
        return JSON.parse(out).end.sum_received.bits_per_second;
      } catch (err) {
        if (t > 20) throw err; // the server may not listen yet
        await sleep(100);
      }
    }
  } finally {
    await stopPid(server, 1000);
  }
}

/** `name version` strings of the tools a benchmark used. */
export async function versions(tools) {
  const cmds = {
    'wireguard-go': ['wireguard-go', ['--version'], /v[\d.]+/],
    'wireguard-tools': ['wg', ['--version'], /v[\d.]+/],
    nebula: ['nebula', ['-version'], /[\d.]+/],
    tinc: ['tincd', ['--version'], /[\d.]+/],
    iperf3: ['iperf3', ['--version'], /[\d.]+/],
    etcd: ['etcd', ['--version'], /[\d.]+/],
    cc: ['cc', ['--version'], /\d+\.\d+\.\d+/],
    python3: ['python3', ['--version'], /[\d.]+/],
  };
  const out = [];
  for (const t of tools) {
    const [cmd, a, re] = cmds[t];
    const text = await sh(cmd, a).catch((e) => e.message);
    out.push(`${t} ${re.exec(text)?.[0] ?? '?'}`);
  }
  return out.join(', ');
}

export const date = () => new Date().toISOString().slice(0, 10);
export const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '-');
export const mib = (kib) => (kib / 1024).toFixed(1);

/**
 * A throwaway single-node etcd on loopback (random ports, fast elections, data dir in the
 * scope's temp dir), as test/helpers/etcd.ts makes it. Resolves with its client host:port.
 */
export async function startEtcd(scope) {
  const net = await import('node:net');
  const free = () =>
    new Promise((resolve) => {
      const s = net.createServer();
      s.listen(0, '127.0.0.1', () => {
        const { port } = s.address();
        s.close(() => resolve(port));
      });
    });
  for (let attempt = 0; attempt < 5; attempt++) {
    const [cp, pp] = [await free(), await free()];
    const data = scope.dir('nsmb-etcd-');
    const name = `nsmb-${TAG}-${attempt}`;
    const c = `http://127.0.0.1:${cp}`;
    const p = `http://127.0.0.1:${pp}`;
    // prettier-ignore
    const proc = scope.proc(spawn('etcd', ['--name', name, '--data-dir', data, '--listen-client-urls', c, '--advertise-client-urls', c,
      '--listen-peer-urls', p, '--initial-advertise-peer-urls', p, '--initial-cluster', `${name}=${p}`,
      '--heartbeat-interval', '10', '--election-timeout', '100', '--quota-backend-bytes', String(4 << 30),
      '--log-level', 'warn', '--logger', 'zap'], { stdio: 'ignore' }));
    for (let t = 0; t < 200 && proc.exitCode === null; t++) {
      const ok = await fetch(`${c}/health`).then((r) => r.json()).then((j) => j.health === 'true', () => false);
      if (ok) return `127.0.0.1:${cp}`;
      await sleep(25);
    }
    await stopPid(proc);
  }
  throw new Error('etcd did not start');
}

/** Registry clients (NS and NSE) on a unix socket. */
export function registryClient(socket, deadlineMs = 60_000) {
  const grpc = require('@grpc/grpc-js');
  const { api } = require(`${ROOT}dist/api/index.js`);
  const r = api().reg.registry;
  const opts = { 'grpc.max_receive_message_length': 256 << 20 };
  const nse = new r.NetworkServiceEndpointRegistry(`unix://${socket}`, grpc.credentials.createInsecure(), opts);
  return {
    register: promisifyCall(nse, 'Register', deadlineMs),
    /** Find without watch: resolves with every response when the stream ends. */
    find: (query) =>
      new Promise((resolve, reject) => {
        const out = [];
        const call = nse.Find({ network_service_endpoint: query, watch: false }, { deadline: Date.now() + deadlineMs });
        call.on('data', (d) => out.push(d));
        call.on('end', () => resolve(out));
        call.on('error', reject);
      }),
    /** Find with watch: calls onData for each response; returns the call (cancel() to end). */
    watch(query, onData) {
      const call = nse.Find({ network_service_endpoint: query, watch: true });
      call.on('data', onData);
      call.on('error', () => {});
      return call;
    },
    dispose: () => grpc.Client.prototype.close.call(nse),
  };
}
