// Summarises a V8 .cpuprofile (node --cpu-prof): self time by function and by file, and the
// inclusive time of functions under src/ (dist/). Used to find where a missed target goes.
//
// Usage: node bench/cpuprof.mjs FILE.cpuprofile [top]
import { readFileSync } from 'node:fs';

/** `window`: only samples taken between from and to (CLOCK_MONOTONIC ms, as lib.mjs mono()). */
export function summarize(file, top = 25, window = undefined) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map();
  const dt = prof.timeDeltas;
  let at = prof.startTime; // microseconds, CLOCK_MONOTONIC (V8 TimeTicks)
  for (let i = 0; i < prof.samples.length; i++) {
    at += dt[i] ?? 0;
    if (window && (at / 1000 < window.from || at / 1000 > window.to)) continue;
    self.set(prof.samples[i], (self.get(prof.samples[i]) ?? 0) + (dt[i] ?? 0) / 1000);
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const key = (n) => `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.replace(/^.*\/(node_modules|dist|node:)/, '$1').replace(/^file:\/\//, '')}:${n.callFrame.lineNumber + 1}`;
  const fileOf = (n) => n.callFrame.url.replace(/^.*\/node_modules\/(@[^/]+\/[^/]+|[^/]+)\/.*/, 'npm:$1').replace(/^.*\/dist\//, 'dist/') || `(${n.callFrame.functionName})`;
  const agg = (f) => {
    const m = new Map();
    for (const [id, t] of self) {
      const k = f(byId.get(id));
      m.set(k, (m.get(k) ?? 0) + t);
    }
    return [...m].sort((a, b) => b[1] - a[1]).slice(0, top);
  };
  // inclusive: each sample counts once for every distinct function on its stack
  const incl = new Map();
  for (const [id, t] of self) {
    const seen = new Set();
    for (let n = id; n !== undefined; n = parent.get(n)) {
      const k = key(byId.get(n));
      if (!k.includes('dist/') || seen.has(k)) continue;
      seen.add(k);
      incl.set(k, (incl.get(k) ?? 0) + t);
    }
  }
  const pctOf = (t) => `${t.toFixed(0).padStart(7)} ms ${((100 * t) / total).toFixed(1).padStart(5)}%`;
  const lines = [`total sampled ${total.toFixed(0)} ms`, '', 'self time by function:'];
  for (const [k, t] of agg(key)) lines.push(`${pctOf(t)}  ${k}`);
  lines.push('', 'self time by file/package:');
  for (const [k, t] of agg(fileOf)) lines.push(`${pctOf(t)}  ${k}`);
  lines.push('', 'inclusive time, functions in dist/:');
  for (const [k, t] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`${pctOf(t)}  ${k}`);
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [file, top, from, to] = process.argv.slice(2);
  console.log(summarize(file, Number(top ?? 25), from ? { from: Number(from), to: Number(to) } : undefined));
}
