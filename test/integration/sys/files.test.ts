// SPDX-License-Identifier: Apache-2.0
// applyFileOps: batches of whole-file replacements and removals on the libuv pool.
import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SysError, applyFileOps, tempPathOf } from '../../../src/sys';
import { native } from '../../../src/sys/native';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'nsm-files-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('applyFileOps', () => {
  it('writes, replaces and removes in order, with the mode asked for and no temporary file left', async () => {
    const d = tmp();
    const a = path.join(d, 'a.json');
    const b = path.join(d, 'b.json');
    writeFileSync(b, 'old');
    const data = Buffer.from('{"n":1}');
    const done = applyFileOps([
      { path: a, data, mode: 0o600 },
      { path: b, data: 'new', mode: 0o640 },
      { path: a, data: '{"n":2}' },
      { path: path.join(d, 'never-there.json') }, // removing a missing file is done
    ]);
    data.fill(0); // copied when the batch was handed over
    expect(await done).toEqual([undefined, undefined, undefined, undefined]);
    expect(readFileSync(a, 'utf8')).toBe('{"n":2}'); // the later write of a path wins
    expect(readFileSync(b, 'utf8')).toBe('new');
    expect(statSync(b).mode & 0o777).toBe(0o640);
    expect(statSync(a).mode & 0o777).toBe(0o600);
    expect(await applyFileOps([{ path: a }])).toEqual([undefined]);
    expect(existsSync(a)).toBe(false);
    expect(readdirSync(d)).toEqual(['b.json']);
    expect(tempPathOf(a)).toBe(`${a}.${process.pid}.tmp`);
  });

  it('reports each failure as a SysError and carries on with the rest; a failed write leaves nothing behind', async () => {
    const d = tmp();
    const ok = path.join(d, 'ok.json');
    const noDir = path.join(d, 'missing', 'x.json');
    const dirAsFile = path.join(d, 'sub');
    mkdirSync(dirAsFile);
    writeFileSync(path.join(dirAsFile, 'keep'), 'x');
    const [e1, e2, e3] = await applyFileOps([{ path: noDir, data: 'x' }, { path: dirAsFile }, { path: ok, data: 'fine' }]);
    expect(e1).toBeInstanceOf(SysError);
    expect(e1).toMatchObject({ code: 'ENOENT', syscall: 'write', path: noDir });
    expect(e2).toMatchObject({ code: 'EISDIR', syscall: 'unlink', path: dirAsFile });
    expect(e3).toBeUndefined();
    expect(readFileSync(ok, 'utf8')).toBe('fine');
    // rename onto a directory fails after the temporary file was written: it is removed
    const [e4] = await applyFileOps([{ path: dirAsFile, data: 'x' }]);
    expect(e4).toMatchObject({ code: 'EISDIR', syscall: 'write' });
    expect(readdirSync(d).sort()).toEqual(['ok.json', 'sub']);
  });

  it('refuses malformed batches with a TypeError before doing anything', () => {
    const bad = [[{}], [{ path: 'x', tmp: 'y' }], [{ path: 'x', data: Buffer.from('') }], [{ path: 'x', tmp: '', data: Buffer.from('') }], ['x']];
    for (const ops of bad) {
      expect(() => native().fileOpsAsync(ops as never)).toThrow(TypeError);
    }
  });
});
