// `npm run bench`: every benchmark in turn; each prints its table and writes its section of
// BENCHMARKS.md. Each runs as its own process and cleans up after itself (namespaces, processes
// by PID, temp dirs), also when it fails.
//
//   npm run bench                      the full set (about 15 minutes on a 2-core host)
//   npm run bench -- --quick           small sizes, 30 s hold (about 3 minutes); writes BENCHMARKS.md too
//   npm run bench -- --only scale,registry
//   npm run bench -- --duration 1m     hold time of bench/scale.mjs (default 5m)
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { args } from './lib.mjs';

const opt = args();
const dir = fileURLToPath(new URL('.', import.meta.url));
const quick = Boolean(opt.quick);
const benches = {
  'connect-local': quick ? ['50', '--concurrent', '50', '--rounds', '1'] : ['200'],
  remote: quick ? ['20', '--peer-runs', '5'] : ['200', '--peer-runs', '30'],
  interdomain: quick ? ['30', '--fresh', '1'] : ['100', '--fresh', '3'],
  coldstart: quick ? ['5'] : ['20'],
  cli: quick ? ['10'] : ['30'],
  rss: quick ? ['1'] : ['3'],
  scale: quick
    ? ['--connections', '200', '--duration', opt.duration ?? '30s', '--lifetime', '15s', '--remote', '20']
    : ['--connections', '1000', '--duration', opt.duration ?? '5m', '--lifetime', '30s', '--remote', '100'],
  registry: quick ? ['--endpoints', '2000', '--watchers', '20', '--finds', '50'] : ['--endpoints', '10000', '--watchers', '100', '--finds', '200'],
  dataplane: quick ? ['--seconds', '1', '--rounds', '1'] : ['--seconds', '3', '--rounds', '3'],
  heal: quick ? ['3'] : ['10'],
  observability: quick ? ['30', '--scrape-conns', '200'] : ['150'],
  vl3: quick ? ['--hosts', '3', '--clients', '3', '--seconds', '1', '--rounds', '1'] : ['--hosts', '5', '--clients', '20'],
};
const only = opt.only ? String(opt.only).split(',') : Object.keys(benches);
let failed = 0;
for (const name of only) {
  if (!benches[name]) throw new Error(`unknown benchmark ${name} (have: ${Object.keys(benches).join(', ')})`);
  console.log(`\n== node bench/${name}.mjs ${benches[name].join(' ')}`);
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [`${dir}${name}.mjs`, ...benches[name]], { stdio: 'inherit' });
  console.log(`== ${name}: ${r.status === 0 ? 'ok' : `FAILED (${r.status ?? r.signal})`} in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  if (r.status !== 0) failed++;
}
process.exitCode = failed ? 1 : 0;
