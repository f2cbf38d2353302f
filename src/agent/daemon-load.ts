/**
 * How `nsm-agent run` loads the daemon: dist/agent/daemon.js, one bundle made by
 * scripts/bundle-daemon.mjs, compiled with a V8 code cache when one fits. With the cache V8
 * neither pre-parses the whole bundle nor compiles again the functions an earlier start
 * compiled, which is about half of the time the bundle takes to load. (Node 22's
 * module.enableCompileCache does this for every module; Node 20 has no such thing.)
 *
 * Where the cache is: in systemd's CacheDirectory= (CACHE_DIRECTORY: /var/cache/nsm-agent for
 * the packaged service), written by the agent itself a while after it started when the cache
 * was missing or did not fit; otherwise beside the bundle, where `npm run build` writes it.
 *
 * The cache file is the SHA-256 of the bundle it was made from (32 bytes), then V8's data. V8
 * itself checks only the source's length, its own version and its flags, so a cache of another
 * bundle of the same length would run that bundle's code: hence the hash. The flags are those
 * prepareV8() sets, when the cache is made and when it is used; with others (a user's
 * --max-semi-space-size) V8 rejects the cache and compiles as without one. A missing, stale or
 * rejected cache costs only the time it would have saved.
 */
import { createHash } from 'node:crypto';
import { isAscii } from 'node:buffer';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import Module from 'node:module';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';

type Daemon = typeof import('./daemon');

/** The parts of Node's CommonJS loader used to run the bundle as the module it is. */
const loader = Module as unknown as typeof Module & { _nodeModulePaths(dir: string): string[]; _cache: Record<string, Module> };

const HASH_BYTES = 32;

/** See prepareV8(). */
const HEAP_GROWING_PERCENT = 33;

/**
 * The daemon's V8 settings that must be made before its code is compiled, and that the code
 * cache is made with (V8 rejects a cache made with other flags).
 *
 * The young generation stays at V8's initial size instead of growing (up to 16 MiB per
 * semi-space) when much survives a scavenge, as loading the modules and a burst of calls do: a
 * long-running agent keeps little young garbage, and the grown space is resident memory it
 * rarely gives back. A semi-space's maximum size is only read at V8's start (a command-line
 * flag), but the growth factor is read at each growth, so setting it here takes effect.
 * NODE_OPTIONS=--max-semi-space-size=N still sets a larger space.
 *
 * Until startDone() (START_FLAGS):
 *   - the optimizing compiler (TurboFan) is off: the start runs its code once (parsing
 *     agent.yaml, validating it, setting up the modules), and what TurboFan would make of the
 *     loops that run hot there is never used again, while the compiler's own code, once run,
 *     stays resident in the process (some 4 MiB of the node binary). The baseline compiler
 *     (Sparkplug) is off with it, for the same reason;
 *   - the old generation grows by V8's own factor, which saves the start full collections;
 *     from then on it may grow by HEAP_GROWING_PERCENT over the live heap before a full GC.
 *     V8's factor goes up to 4x when GC is cheap, which lets an agent holding many refreshed
 *     connections carry several times its live heap between full GCs; a smaller factor bounds
 *     the peak for a little more CPU (more full GCs).
 */
export function prepareV8(): void {
  if (!/--max-semi-space-size/.test(process.env['NODE_OPTIONS'] ?? '') && !process.execArgv.some((a) => a.startsWith('--max-semi-space-size'))) {
    v8.setFlagsFromString('--semi-space-growth-factor=1');
  }
  setStartFlags(true);
}

/** Each flag (by its names) during the start, and after it: V8's default or the agent's setting. */
const START_FLAGS: [names: string[], start: string, after: string][] = [
  [['opt', 'turbofan'], '--no-opt', '--opt'],
  [['sparkplug'], '--no-sparkplug', '--sparkplug'],
  [['heap-growing-percent'], '--heap-growing-percent=0', `--heap-growing-percent=${HEAP_GROWING_PERCENT}`],
];

let startFlags = false;

/**
 * Sets the flags of the start (above) or those after it. A flag given on Node's command line
 * (e.g. --no-opt) is left as it is.
 */
function setStartFlags(on: boolean): void {
  if (on === startFlags) return;
  startFlags = on;
  const given = new Set(process.execArgv.map((a) => a.replace(/^--(no-)?/, '').replace(/=.*/, '').replaceAll('_', '-')));
  for (const [names, start, after] of START_FLAGS) {
    if (names.some((n) => given.has(n))) continue;
    v8.setFlagsFromString(on ? start : after);
  }
}

/** The start is over: the flags after it (START_FLAGS), the optimizing compilers back for code that runs hot from now on. */
export function startDone(): void {
  setStartFlags(false);
}

export const daemonFile = (): string => require.resolve('./daemon');

export type CacheUse = 'used' | 'rejected' | 'stale' | 'none';

/**
 * The first line of the bundle. What follows is the module already wrapped as Node's loader
 * wraps one (`(function (exports, require, module, __filename, __dirname) {...})`): the file is
 * compiled as it is read, with no wrapped copy made of a source this size, which would stay in
 * memory beside the original until a full collection.
 */
export const BUNDLE_MARK = '// nsm-agent daemon bundle (scripts/bundle-daemon.mjs)';

function compile(file: string, source: string, cachedData?: Buffer): vm.Script {
  return new vm.Script(source, { filename: file, ...(cachedData ? { cachedData } : {}) });
}

/** Runs the compiled bundle as the CommonJS module `file` (in require's cache) and returns its exports. */
function run(script: vm.Script, file: string): Daemon {
  const m = new Module(file, module);
  m.filename = file;
  m.paths = loader._nodeModulePaths(path.dirname(file));
  loader._cache[file] = m;
  try {
    (script.runInThisContext() as (...a: unknown[]) => void)(m.exports, Module.createRequire(file), m, file, path.dirname(file));
  } catch (err) {
    delete loader._cache[file];
    throw err;
  }
  m.loaded = true;
  return m.exports as Daemon;
}

export interface LoadedDaemon {
  daemon: Daemon;
  cache: CacheUse;
  /**
   * Writes the cache (what is compiled by now) into CACHE_DIRECTORY unless it was used there;
   * false where it is not written. Without CACHE_DIRECTORY nothing is written: the build's cache
   * beside the bundle is shared by every agent started from that tree.
   */
  saveCache(): boolean;
}

/** Loads the daemon, with its code cache when there is one that fits; says what became of the cache. */
export function loadDaemon(file: string = daemonFile()): LoadedDaemon {
  const bundle = readBundle(file);
  // a tree built without the bundle step: its daemon.js is a module like any other
  if (!bundle) return { daemon: require(file) as Daemon, cache: 'none', saveCache: () => false };
  const { source, hash } = bundle;
  // systemd's CacheDirectory= (its first entry) when set, else beside the bundle
  const cacheDir = process.env['CACHE_DIRECTORY']?.split(':')[0];
  const cacheFile = cacheDir ? path.join(cacheDir, `${path.basename(file)}.cache`) : `${file}.cache`;
  let cache: Buffer | undefined;
  try {
    cache = readFileSync(cacheFile);
  } catch {
    /* none yet */
  }
  const fits = !!cache && cache.length > HASH_BYTES && cache.subarray(0, HASH_BYTES).equals(hash);
  const script = compile(file, source, fits ? cache!.subarray(HASH_BYTES) : undefined);
  const use: CacheUse = !cache ? 'none' : !fits ? 'stale' : script.cachedDataRejected ? 'rejected' : 'used';
  const daemon = run(script, file);
  // the script is kept (by the saver) only where a cache is to be written
  const saveCache = use === 'used' || !cacheDir ? () => false : () => writeCache(script, hash, cacheFile);
  return { daemon, cache: use, saveCache };
}

/** Writes the cache aside and renames it: an agent starting meanwhile reads the old file or the new one. */
function writeCache(script: vm.Script, hash: Buffer, cacheFile: string): boolean {
  const aside = `${cacheFile}.${process.pid}`;
  try {
    // V8 stamps the cache with the flags set when it is made: those of the start, when it is used
    const was = startFlags;
    setStartFlags(true);
    let data: Buffer;
    try {
      data = script.createCachedData();
    } finally {
      setStartFlags(was);
    }
    writeFileSync(aside, Buffer.concat([hash, data]), { mode: 0o600 });
    renameSync(aside, cacheFile);
    return true;
  } catch {
    rmSync(aside, { force: true });
    return false;
  }
}

/**
 * Writes the code cache of the bundle `file` beside it: run in a fresh process (the build does),
 * after prepareV8(), so that it carries the daemon's flags and holds what loading compiles.
 */
export function writeDaemonCache(file: string = daemonFile()): void {
  const bundle = readBundle(file);
  if (!bundle) throw new Error(`${file} is not the daemon's bundle`);
  const { source, hash } = bundle;
  const script = compile(file, source);
  // the module bodies run now, and what warmUp() runs, are compiled into the cache too
  run(script, file).warmUp();
  if (!writeCache(script, hash, `${file}.cache`)) throw new Error(`cannot write ${file}.cache`);
}

/**
 * The bundle's source and the SHA-256 of its bytes; undefined when `file` is not a bundle. The
 * bytes are hashed as read, and an ASCII file (as the build makes it) becomes a string as Latin-1:
 * no UTF-8 decoding, nor encoding again for the hash.
 */
function readBundle(file: string): { source: string; hash: Buffer } | undefined {
  const bytes = readFileSync(file);
  if (!bytes.subarray(0, BUNDLE_MARK.length).equals(Buffer.from(BUNDLE_MARK))) return undefined;
  return { source: bytes.toString(isAscii(bytes) ? 'latin1' : 'utf8'), hash: createHash('sha256').update(bytes).digest() };
}
