// Which files of a production dependency the packages ship: what Node can load at run time, and
// the license texts. Tests, examples, benchmarks, documentation, TypeScript sources and
// declarations, source maps and the C/C++ inputs of addon builds stay out.
// test/unit/package-prune.test.ts checks that nothing the application can reach is left out.
// Of dist/, the JavaScript files the packaged entry points reach: the daemon is one bundle
// (scripts/bundle-daemon.mjs), so the files it was made of are not needed at run time.
import path from 'node:path';
import { buildSync } from 'esbuild';

/** Directory names that hold a package's tests, examples or benchmarks, at any depth in it. */
const NOT_RUNTIME_DIRS = new Set(['test', 'tests', '__tests__', 'spec', 'example', 'examples', 'bench', 'benchmark', 'benchmarks', 'coverage']);

/** File names never loaded by Node. */
const NOT_RUNTIME_FILES = [
  /\.(map|ts|mts|cts)$/, // source maps, TypeScript sources and declarations (.d.ts)
  /\.mjs$/, // ES module builds: the agent is CommonJS and require() takes the .js/.cjs ones
  /\.(md|markdown|html|htm)$/i, // documentation
  /^(readme|changelog|changes|history|authors|contributors|contributing)(\.|$)/i,
  /\.(h|hh|hpp|c|cc|cpp|gyp|gypi)$/, // sources and build files of native addons (built already)
  /^(Makefile|binding\.gyp|tsconfig(\..*)?\.json)$/,
];

/** Files that a dependency's published tarball holds by mistake and nothing requires. */
const NOT_RUNTIME_PATHS = new Set([
  'xml2js/lib/xml2js.bc.js', // a js_of_ocaml build shipped in xml2js 0.6.x; lib/xml2js.js never loads it
]);

/**
 * Directories of a module that Node's require() never reaches: ESM and browser builds beside
 * the CommonJS one that `main`/`exports` give for require, and command-line tools.
 */
const NOT_RUNTIME_SUBDIRS = [
  (mod, rel) => mod.startsWith('@opentelemetry/') && /^build\/(esm|esnext)(\/|$)/.test(rel),
  (mod, rel) => mod === 'protobufjs' && /^dist(\/|$)/.test(rel), // browser bundles; require('protobufjs') is src/
  (mod, rel) => mod === 'yaml' && /^browser(\/|$)/.test(rel), // exports: node -> dist/
  (mod, rel) => mod === '@grpc/proto-loader' && /^build\/bin(\/|$)/.test(rel), // the type generator CLI
];

/**
 * Whole modules that only build or command-line tools use: yargs (proto-loader's type generator
 * CLI) and node-addon-api (headers for building netlink, which ships prebuilt).
 */
const NOT_RUNTIME_MODULES = new Set(['yargs', 'yargs-parser', 'node-addon-api']);

const LICENSE = /^(licen[cs]e|copying|notice)/i;

/**
 * True when the file or directory at `rel` (relative to the module's own directory, with '/'
 * separators) of the module `mod` (e.g. 'xml2js', '@grpc/grpc-js') goes into the package.
 */
export function shipsModuleFile(mod, rel, isDirectory) {
  if (rel === '') return !NOT_RUNTIME_MODULES.has(mod);
  if (NOT_RUNTIME_SUBDIRS.some((f) => f(mod, rel))) return false;
  const parts = rel.split('/');
  const name = parts[parts.length - 1];
  if (parts[0] === 'node_modules') return false; // nested modules are staged on their own
  if (/(^|\/)prebuilds\/(?!linux-x64)[^/]+/.test(rel)) return false; // other platforms' addons
  if (name.startsWith('.')) return false; // .npmignore, .eslintrc.yml, .github ...
  if (parts.some((p, i) => (i < parts.length - 1 || isDirectory) && NOT_RUNTIME_DIRS.has(p))) return false;
  if (isDirectory) return true;
  if (LICENSE.test(name)) return true;
  if (NOT_RUNTIME_PATHS.has(`${mod}/${rel}`)) return false;
  return !NOT_RUNTIME_FILES.some((re) => re.test(name));
}

/** The scripts the packages run: the CLI, the daemon's bundle (which the CLI loads by its path) and the generator. */
export const ENTRY_POINTS = ['dist/agent/main.js', 'dist/agent/daemon.js', 'dist/agent/systemd/generator.js'];

/**
 * The .js files of `root`/dist that the entry points reach through relative requires (as
 * esbuild follows them; dependencies are not followed): absolute paths.
 */
export function reachedDistFiles(root) {
  const result = buildSync({
    entryPoints: ENTRY_POINTS.map((e) => path.join(root, e)),
    absWorkingDir: root,
    bundle: true,
    write: false,
    platform: 'node',
    target: 'node20',
    outdir: path.join(root, 'out/dist-reach'),
    packages: 'external',
    external: ['*.node'],
    metafile: true,
    logLevel: 'silent',
  });
  const dist = path.join(root, 'dist') + path.sep;
  return new Set(Object.keys(result.metafile.inputs).map((i) => path.resolve(root, i)).filter((f) => f.startsWith(dist) && f.endsWith('.js')));
}
