// What the benchmarks measure and report with: percentiles, process figures from /proc, tool
// versions, command-line flags, and the sections of BENCHMARKS.md. Hosts, agents, etcd,
// probes and clients come from the shared harness (test/harness) through bench/scope.mjs.
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { ROOT, run } from '../test/harness/exec.mjs';

export const MD = path.join(ROOT, 'BENCHMARKS.md');

/**
 * Variables of the shell that runs a benchmark that make every Node process it starts do work
 * before any script runs, work that the packaged agent (systemd gives it a clean environment)
 * and a user's shell usually do not: NODE_EXTRA_CA_CERTS has Node read and parse the named
 * certificates at start (about 90 ms for Debian's whole CA bundle, on this project's machines).
 * Every process a benchmark starts (agents, CLIs and the `node -e 0` floors alike) runs without
 * them; machine() says which were set and removed.
 */
const START_COST_VARIABLES = ['NODE_EXTRA_CA_CERTS'];
const removedFromEnv = START_COST_VARIABLES.filter((v) => process.env[v] !== undefined);
for (const v of removedFromEnv) delete process.env[v];

/** A short tag unique to this run (namespace names, wireguard-go device names are global). */
export const TAG = (process.pid % 10000).toString(36);

/** CLOCK_MONOTONIC in milliseconds (the clock python's time.monotonic_ns and C use too). */
export const mono = () => Number(process.hrtime.bigint()) / 1e6;

export function pct(samples, p) {
  const s = [...samples].sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}
export const median = (xs) => pct(xs, 50);

export function summary(samples) {
  return { n: samples.length, p50: pct(samples, 50), p99: pct(samples, 99), min: Math.min(...samples), max: Math.max(...samples) };
}

export const ms = (x) => (Number.isFinite(x) ? x.toFixed(2) : '-');
export const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '-');
export const mib = (kib) => (kib / 1024).toFixed(1);
export const date = () => new Date().toISOString().slice(0, 10);

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
  const removed = removedFromEnv.length ? `; ${removedFromEnv.join(', ')} removed from the runs' environment` : '';
  return `${os.cpus().length} x ${cpu}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${kernel}, Node ${process.version}, ${iproute}${removed}`;
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
    dnsmasq: ['dnsmasq', ['--version'], /[\d.]+/],
  };
  const out = [];
  for (const t of tools) {
    const [cmd, a, re] = cmds[t];
    const text = await run(cmd, a).catch((e) => e.message);
    out.push(`${t} ${re.exec(text)?.[0] ?? '?'}`);
  }
  return out.join(', ');
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
