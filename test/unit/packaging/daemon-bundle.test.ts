/**
 * `npm run build` makes dist/agent/daemon.js one bundle (scripts/bundle-daemon.mjs). The modules
 * the CLI has loaded when it requires the daemon must stay out of it: a second copy of
 * core/errors.js or config/error.js inside the bundle would make main.js's `instanceof` checks
 * fail for the daemon's errors (a configuration error would exit 1 instead of 2).
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../../..');
const DAEMON = path.join(ROOT, 'dist/agent/daemon.js');

describe.runIf(existsSync(DAEMON))('the daemon bundle', () => {
  const text = readFileSync(DAEMON, 'utf8');
  // what went into the bundle: its source map's sources, relative to the repository
  const inputs = (JSON.parse(readFileSync(`${DAEMON}.map`, 'utf8')) as { sources: string[] }).sources.map((f) => path.relative(ROOT, path.resolve(path.dirname(DAEMON), f)));

  it('is a bundle holding the daemon and yaml, but none of the modules main.js loads', () => {
    expect(text.startsWith('// nsm-agent daemon bundle')).toBe(true);
    expect(inputs).toContain('src/agent/agent.ts');
    expect(inputs).toContain('node_modules/yaml/dist/index.js');
    const out = execFileSync(process.execPath, ['-e', `require(${JSON.stringify(path.join(ROOT, 'dist/agent/main.js'))}); console.log(JSON.stringify(Object.keys(require.cache)))`], { encoding: 'utf8' });
    const loaded = (JSON.parse(out) as string[]).filter((f) => f.startsWith(path.join(ROOT, 'dist') + path.sep)).map((f) => path.relative(ROOT, f));
    expect(loaded).toContain('dist/core/errors.js');
    for (const f of loaded) expect(inputs, f).not.toContain(f.replace(/^dist\//, 'src/').replace(/\.js$/, '.ts'));
    expect(text).toContain('require("../core/errors.js")');
  });

  it('leaves gRPC and the other dependencies to be loaded on use', () => {
    expect(inputs.filter((f) => f.startsWith('node_modules/@grpc/'))).toEqual([]);
    expect(text).toContain('require("@grpc/grpc-js")');
  });
});

describe.runIf(existsSync(`${DAEMON}.cache`))("the daemon bundle's code cache (src/agent/daemon-load.ts)", () => {
  /** Loads `file` in a fresh Node; with `started`, saves the cache after startDone() as `run` does. */
  const load = (prepare: boolean, file = DAEMON, env: NodeJS.ProcessEnv = {}, started = false) =>
    execFileSync(
      process.execPath,
      ['-e', `const l = require(${JSON.stringify(path.join(ROOT, 'dist/agent/daemon-load.js'))}); ${prepare ? 'l.prepareV8();' : ''} const r = l.loadDaemon(${JSON.stringify(file)}); ${started ? 'l.startDone();' : ''} r.saveCache(); process.stdout.write(r.cache + ' ' + typeof r.daemon.runDaemon)`],
      { encoding: 'utf8', env: { ...process.env, CACHE_DIRECTORY: '', ...env } },
    );

  it('is used with the flags the daemon runs with, and rejected (not used) with others', () => {
    expect(load(true)).toBe('used function');
    expect(load(false)).toBe('rejected function');
  });

  it("under systemd (CACHE_DIRECTORY) the agent writes its own, and the next start uses it", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'nsmu-cache-'));
    try {
      // written once the start is over (the optimizing compiler back on): stamped with the
      // start's flags all the same, or the next start would reject it
      expect(load(true, DAEMON, { CACHE_DIRECTORY: dir }, true)).toBe('none function');
      expect(statSync(path.join(dir, 'daemon.js.cache')).mode & 0o777).toBe(0o600);
      expect(load(true, DAEMON, { CACHE_DIRECTORY: dir }, true)).toBe('used function');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is not used for another bundle of the same length', () => {
    // beside the bundle, so that its relative requires resolve
    const file = path.join(ROOT, 'dist/agent', `.daemon-test-${process.pid}.js`);
    try {
      const text = readFileSync(DAEMON, 'utf8');
      // the same length, one character changed
      const other = text.replace('"re-establishing connections failed"', '"re-establishing connections faileD"');
      expect(other).not.toBe(text);
      writeFileSync(file, other);
      copyFileSync(`${DAEMON}.cache`, `${file}.cache`);
      expect(load(true, file)).toMatch(/^stale /);
    } finally {
      rmSync(file, { force: true });
      rmSync(`${file}.cache`, { force: true });
    }
  });
});
