#!/usr/bin/env node
// Part of `npm run build`: dist/agent/daemon.js (tsc's output, what `nsm-agent run` loads) is
// replaced by one esbuild bundle of it, the dist/ modules it reaches and the `yaml` and
// `netlink` packages; then its V8 code cache is written beside it (daemon.js.cache, used by
// src/agent/daemon-load.ts).
//
// Why: `nsm-agent run` loads some 370 CommonJS files before it is ready, and Node's loader
// spends a fixed cost on each (resolving the name, reading the file, wrapping and compiling
// it) that one file does not pay. The CLI (dist/agent/main.js) stays unbundled: its commands
// load a few small modules each, and parsing the daemon's bundle would cost them more than it
// saves.
//
// What stays a file of its own, required by the bundle as before:
//   - the other dependencies: they are loaded on first use (gRPC, etcd, OpenTelemetry,
//     prom-client, D-Bus); and netlink's raw.js, which finds its addon beside it;
//   - the dist/ modules main.js has loaded when it requires the daemon, so that the process
//     has one instance of each (main.js's `instanceof ConfigError` sees the daemon's errors);
//   - dist/api/descriptor.js, which reads descriptor.json beside it.
// Bundled modules run with dist/agent as their __dirname; those that use it must find their
// files from there too (DIRNAME_OK), which the build checks for every module it bundles.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const DIST = path.join(ROOT, 'dist');
const ENTRY = path.join(DIST, 'agent', 'daemon.js');
// The bundle's first line, then the module wrapped as src/agent/daemon-load.ts compiles it.
const { BUNDLE_MARK: MARK } = createRequire(import.meta.url)(path.join(DIST, 'agent', 'daemon-load.js'));
/** Dependencies inlined into the bundle: many files, all loaded at start. */
const INLINED_PACKAGES = new Set(['yaml', 'netlink']);
/** Their files that stay out (by the name to require them with), and why. */
const PACKAGE_FILES_KEPT = new Map([['node_modules/netlink/dist/raw.js', 'netlink/dist/raw.js']]); // loads its addon from __dirname

if (readFileSync(ENTRY, 'utf8').startsWith(MARK)) throw new Error(`${ENTRY} is a bundle already: run npm run build`);

/** dist/ files main.js loads before it requires the daemon (asked of a fresh Node). */
function loadedByMain() {
  const out = execFileSync(process.execPath, ['-e', `require(${JSON.stringify(path.join(DIST, 'agent', 'main.js'))}); process.stdout.write(JSON.stringify(Object.keys(require.cache)))`], { encoding: 'utf8' });
  return JSON.parse(out).filter((f) => f.startsWith(DIST + path.sep));
}

/** dist/ files that use __dirname and read a file beside them: kept out of the bundle. */
const BESIDE = ['api/descriptor.js'];
/** Bundled files that use __dirname correctly from dist/agent too, and why. */
const DIRNAME_OK = {
  'dist/sys/native.js': 'looks for native/build in each parent directory',
  'dist/spire/workload.js': 'proto/ is two levels up, as from any directory of dist/',
};

const shared = new Set([...loadedByMain(), ...BESIDE.map((f) => path.join(DIST, f))]);
shared.delete(ENTRY);
for (const f of shared) {
  for (const m of readFileSync(f, 'utf8').matchAll(/require\("(\.\.?\/[^"]+)"\)/g)) {
    const dep = resolveRelative(path.dirname(f), m[1]);
    if (dep && !shared.has(dep)) throw new Error(`${path.relative(DIST, f)} stays out of the bundle but requires ${m[1]}, which is in it: two instances of it would run`);
  }
}

/** A relative require in dist/ as Node resolves it: the file, FILE.js or FILE/index.js. */
function resolveRelative(dir, spec) {
  const base = path.resolve(dir, spec);
  for (const c of [base, `${base}.js`, path.join(base, 'index.js')]) {
    if (existsSync(c) && !c.endsWith(path.sep) && (c.endsWith('.js') || c.endsWith('.json'))) return c;
  }
  return undefined;
}

const packageName = (spec) => (spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]);

const keepShared = {
  name: 'nsm-agent-externals',
  setup(b) {
    b.onResolve({ filter: /^\.\.?\// }, (args) => {
      const file = resolveRelative(args.resolveDir, args.path);
      const kept = file && PACKAGE_FILES_KEPT.get(path.relative(ROOT, file));
      if (kept) return { path: kept, external: true };
      if (!file || !shared.has(file) || !file.startsWith(DIST)) return undefined;
      let rel = path.relative(path.dirname(ENTRY), file);
      if (!rel.startsWith('.')) rel = `./${rel}`;
      return { path: rel, external: true };
    });
    b.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.path.startsWith('node:')) return undefined;
      return INLINED_PACKAGES.has(packageName(args.path)) ? undefined : { path: args.path, external: true };
    });
  },
};

// built beside dist/agent (same depth: the source map's relative paths hold) and moved over it
const TMP_DIR = path.join(DIST, '.bundle');
const tmp = path.join(TMP_DIR, 'daemon.js');
const result = await build({
  entryPoints: [ENTRY],
  outfile: tmp,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // Minified, and ASCII only: V8 keeps the source of a script for its lazily compiled
  // functions, and one character outside Latin-1 would make it two bytes per character. Local
  // names are shortened and function names are not kept (esbuild's keepNames defines `name` on
  // each function, which gives hundreds of them a property table of their own): no code reads
  // them, and stack traces name the bundle's positions, which the source map (beside the bundle
  // in a build tree, `node --enable-source-maps`) leads back to src/.
  minify: true,
  charset: 'ascii',
  legalComments: 'none',
  sourcemap: 'linked',
  banner: { js: `${MARK}\n(function (exports, require, module, __filename, __dirname) {` },
  footer: { js: '})' },
  plugins: [keepShared],
  absWorkingDir: ROOT,
  logLevel: 'warning',
  metafile: true,
});
for (const input of Object.keys(result.metafile.inputs)) {
  const rel = path.relative(ROOT, path.resolve(ROOT, input));
  if (DIRNAME_OK[rel] || !readFileSync(path.join(ROOT, rel), 'utf8').includes('__dirname')) continue;
  throw new Error(`${rel} uses __dirname and would be bundled into dist/agent: keep it out (BESIDE, PACKAGE_FILES_KEPT) or list it in DIRNAME_OK`);
}
renameSync(tmp, ENTRY);
renameSync(`${tmp}.map`, `${ENTRY}.map`);
rmSync(TMP_DIR, { recursive: true });
const inputs = Object.keys(result.metafile.inputs).length;
console.log(`bundled ${path.relative(ROOT, ENTRY)}: ${inputs} modules in, ${shared.size} dist/ modules kept out`);

// Its V8 code cache (src/agent/daemon-load.ts), made in a fresh Node with the daemon's flags.
const LOADER = path.join(DIST, 'agent', 'daemon-load.js');
execFileSync(process.execPath, ['-e', `const l = require(${JSON.stringify(LOADER)}); l.prepareV8(); l.writeDaemonCache()`]);
console.log(`wrote ${path.relative(ROOT, ENTRY)}.cache: ${statSync(`${ENTRY}.cache`).size} bytes`);
