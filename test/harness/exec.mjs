// @ts-check
/**
 * Commands and polling shared by the tests and the benchmarks: `sh` (blocking, never throws),
 * `run` and `ip` (promises that reject with the command's stderr), `until`, unique names.
 */
import { execFile, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's root directory. */
// @ts-expect-error import.meta: this file is ESM (node, vitest); tsconfig's module is commonjs
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** require() from the repository's root: its node_modules, and dist/ by path. */
export const requireRoot = createRequire(path.join(ROOT, 'package.json'));

/**
 * Runs a command to its end (60 s at most).
 * @param {string} cmd
 * @param {string[]} args
 * @returns {{ code: number; stdout: string; stderr: string }}
 */
export function sh(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/**
 * Runs a command without blocking; resolves with its stdout, rejects with its stderr.
 * @param {string} cmd
 * @param {string[]} args
 * @param {string} [input] written to its stdin
 * @param {import('node:child_process').ExecFileOptions} [opts]
 * @returns {Promise<string>}
 */
export function run(cmd, args, input, opts = {}) {
  return new Promise((resolve, reject) => {
    const p = execFile(cmd, args, { maxBuffer: 1 << 26, ...opts, encoding: 'utf8' }, (err, stdout, stderr) =>
      err ? reject(new Error(`${cmd} ${args.join(' ')}: ${String(stderr).trim() || err.message}`)) : resolve(String(stdout)),
    );
    if (input !== undefined) p.stdin?.end(input);
  });
}

/**
 * `ip ARGS` (with `-batch -`, the batch as `input`).
 * @param {string[]} args
 * @param {string} [input]
 */
export const ip = (args, input) => run('ip', args, input);

/** @param {number} ms */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `probe` every `step` ms until it returns something truthy (returned) or `ms` pass
 * (undefined). The probe may be async.
 * @template T
 * @param {() => T | undefined | false | Promise<T | undefined | false>} probe
 * @param {number} ms
 * @param {number} [step]
 * @returns {Promise<T | undefined>}
 */
export async function until(probe, ms, step = 50) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) return undefined;
    await sleep(step);
  }
}

/**
 * A name unique to this process and call, at most 15 characters (an interface name's limit).
 * @param {string} prefix
 */
export function uniq(prefix) {
  return `${prefix}${process.pid.toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`.slice(0, 15);
}

export const isRoot = process.getuid?.() === 0;
