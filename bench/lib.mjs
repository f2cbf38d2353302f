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
