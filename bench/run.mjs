// `npm run bench`: every benchmark in turn; each prints its table and updates BENCHMARKS.md.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
const benches = [['connect-local.mjs', '200']];
let failed = 0;
for (const [file, ...args] of benches) {
  console.log(`\n== ${file} ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [`${dir}${file}`, ...args], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exitCode = failed ? 1 : 0;
