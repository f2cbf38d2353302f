// Where the deb's size goes, from a built deb: the Node runtime with this host's full ICU data
// and as packaged (English-only ICU, scripts/runtime-icu.mjs), the ICU data package alone in
// both forms, and the application as shipped and as one esbuild bundle. Parts are compressed
// with xz -6 (single-threaded) to compare them; the deb itself as dpkg-deb made it.
//
//   npm run package && node bench/package-means.mjs out/packages/nsm-agent_<v>_amd64.deb
import { exec, execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { findIcuPackage } from '../scripts/runtime-icu.mjs';
import { machine, table, writeSection, date } from './lib.mjs';

const deb = process.argv[2];
if (!deb) throw new Error('usage: node bench/package-means.mjs FILE.deb');
const APP = 'usr/lib/nsm-agent';
const dir = mkdtempSync(path.join(os.tmpdir(), 'nsm-means-'));
/** Bytes of `sh -c cmd` output, counted by wc -c. */
const bytes = async (cmd) => Number((await promisify(exec)(`${cmd} | wc -c`, { cwd: dir, maxBuffer: 1 << 20 })).stdout.trim());
const mib = (b) => (b / 2 ** 20).toFixed(2);
try {
  execFileSync('dpkg-deb', ['-x', deb, dir]);
  const packaged = path.join(APP, 'bin/node');
  // The runtime as it was before its ICU data was cut: this host's node, stripped the same way.
  const full = 'node-full-icu';
  copyFileSync(process.execPath, path.join(dir, full));
  execFileSync('strip', ['--strip-unneeded', path.join(dir, full)]);
  const icu = {};
  for (const [name, file] of [['full', full], ['english', packaged]]) {
    const bin = readFileSync(path.join(dir, file));
    const pkg = findIcuPackage(bin);
    if (!pkg) throw new Error(`${file} embeds no ICU data package`);
    const data = bin.subarray(pkg.offset, pkg.offset + pkg.length);
    const toc = data.readUInt16LE(0);
    icu[name] = { items: data.readUInt32LE(toc), file: `icu-${name}.dat` };
    writeFileSync(path.join(dir, icu[name].file), data);
  }

  const appParts = ['dist', 'node_modules', 'proto', 'native', 'package.json'].map((p) => path.join(APP, p)).join(' ');
  const bundle = path.join(dir, 'bundle/main.js');
  const b = spawnSync('npx', ['esbuild', path.join(dir, APP, 'dist/agent/main.js'), '--bundle', '--platform=node', '--target=node20', '--conditions=node', '--main-fields=main', '--minify', '--legal-comments=external', '--log-level=error', `--outfile=${bundle}`], { encoding: 'utf8' });
  if (b.status !== 0) throw new Error(`esbuild: ${b.stderr}`);
  // what a bundle cannot hold: the addons and the .proto files read at run time
  const rest = `${path.join(APP, 'native')} ${path.join(APP, 'proto')} $(find ${path.join(APP, 'node_modules')} -name '*.node' -o -name '*.proto')`;
  const xz = (what) => `xz -6 -T1 -c ${what}`;
  const [runtimeFull, runtimeEnglish, icuFull, icuEnglish, appShipped, appBundle] = await Promise.all([
    bytes(xz(full)),
    bytes(xz(packaged)),
    bytes(xz(icu.full.file)),
    bytes(xz(icu.english.file)),
    bytes(`tar -c ${appParts} | xz -6 -T1`),
    bytes(`tar -c bundle ${rest} | xz -6 -T1`),
  ]);
  const rows = [
    ['the deb as built (dpkg-deb -Zxz -z9 -Sextreme)', mib(statSync(deb).size)],
    [`Node runtime, stripped, full ICU (this host's node; ${icu.full.items} ICU items)`, mib(runtimeFull)],
    [`Node runtime as packaged: English-only ICU (${icu.english.items} ICU items)`, mib(runtimeEnglish)],
    ['ICU data package alone, full', mib(icuFull)],
    ['ICU data package alone, English-only', mib(icuEnglish)],
    ['application as shipped: dist/, pruned node_modules/ (minified), proto/, addon (tar)', mib(appShipped)],
    ['application as one esbuild bundle + addons + .proto files (tar)', mib(appBundle)],
  ];
  const out = table(['part (xz -6 unless said)', 'MiB'], rows);
  console.log(out);
  writeSection(
    'package-means',
    `## Package size: where it goes

Command: \`npm run package && node bench/package-means.mjs out/packages/nsm-agent_<v>_amd64.deb\`, ${date()}.
Machine: ${machine()}.

${out}

The runtime's size was mostly its full ICU data (every locale, charset converters, word dictionaries);
the packaged runtime keeps what Node's small-icu builds keep (root and English, and all data that is not
per locale) and the break iterator rules. What remains is Node itself: V8, OpenSSL, libuv and Node's own
JavaScript. The application is the other part; as one bundle it would be smaller still.`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
