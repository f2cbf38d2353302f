/**
 * The benchmarks are not run by the suite (they take minutes and want a quiet machine), so at
 * least every script must parse: a syntax error would otherwise surface only at the next run.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const BENCH = path.join(__dirname, '..', '..', 'bench');
const scripts = ['', 'floor'].flatMap((dir) =>
  readdirSync(path.join(BENCH, dir))
    .filter((f) => f.endsWith('.mjs'))
    .map((f) => path.join(dir, f)),
);

describe('bench scripts', () => {
  it.each(scripts)('%s parses', (file) => {
    const r = spawnSync(process.execPath, ['--check', path.join(BENCH, file)], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
  });
});
