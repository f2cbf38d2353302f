// What each means of shrinking the deb could give, from a built deb: its parts compressed as
// dpkg-deb compresses them (xz -6), the Node runtime also with xz's x86 filter, and the
// application as one esbuild bundle instead of dist/ + node_modules/.
//
//   npm run package && node bench/package-means.mjs out/packages/nsm-agent_<v>_amd64.deb
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { machine, table, writeSection, date } from './lib.mjs';

const deb = process.argv[2];
if (!deb) throw new Error('usage: node bench/package-means.mjs FILE.deb');
const APP = 'usr/lib/nsm-agent';
const dir = mkdtempSync(path.join(os.tmpdir(), 'nsm-means-'));
/** Bytes of `sh -c cmd` output piped through wc -c. */
const bytes = (cmd) => Number(execFileSync('sh', ['-c', `${cmd} | wc -c`], { cwd: dir, encoding: 'utf8', maxBuffer: 1 << 20 }).trim());
const mib = (b) => (b / 2 ** 20).toFixed(1);
try {
  execFileSync('dpkg-deb', ['-x', deb, dir]);
  const node = path.join(APP, 'bin/node');
  const appParts = ['dist', 'node_modules', 'proto', 'native', 'package.json'].map((p) => path.join(APP, p)).join(' ');
  const bundle = path.join(dir, 'bundle/main.js');
  const b = spawnSync('npx', ['esbuild', path.join(dir, APP, 'dist/agent/main.js'), '--bundle', '--platform=node', '--target=node20', '--minify', '--legal-comments=external', '--log-level=error', `--outfile=${bundle}`], { encoding: 'utf8' });
  if (b.status !== 0) throw new Error(`esbuild: ${b.stderr}`);
  // what a bundle cannot hold: the addons and the .proto files read at run time
  const rest = `${path.join(APP, 'native')} ${path.join(APP, 'proto')} $(find ${path.join(APP, 'node_modules')} -name '*.node' -o -name '*.proto')`;
  const rows = [
    ['the deb as built (xz -6)', mib(statSync(deb).size)],
    ['Node runtime, stripped, xz -6', mib(bytes(`xz -6 -T1 -c ${node}`))],
    ['Node runtime, stripped, xz -6 with the x86 BCJ filter (not offered by dpkg-deb)', mib(bytes(`xz --x86 --lzma2=preset=6 -T1 -c ${node}`))],
    ['application as shipped: dist/, node_modules/, proto/, addon (tar, xz -6)', mib(bytes(`tar -c ${appParts} | xz -6 -T1`))],
    ['application as one esbuild bundle + addons + .proto files (tar, xz -6)', mib(bytes(`tar -c bundle ${rest} | xz -6 -T1`))],
  ];
  const out = table(['part', 'MiB'], rows);
  console.log(out);
  writeSection(
    'package-means',
    `## Package size: where it goes

Command: \`npm run package && node bench/package-means.mjs out/packages/nsm-agent_<v>_amd64.deb\`, ${date()}.
Machine: ${machine()}.

${out}

The Node runtime alone, compressed, is above 15 MiB: bundling the application (esbuild) saves well under
1 MiB of the deb; Node's single-executable applications and startup snapshots add the application to a
copy of the same binary, so neither makes it smaller. A deb under 15 MiB needs a smaller runtime (a Node built
with small-icu or without ICU, or a system libnode), not a different packing of the application.`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
