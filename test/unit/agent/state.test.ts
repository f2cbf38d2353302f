import { describe, it, expect, afterEach } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FakeClock } from '../../../src/core/clock';
import { createLogger, silentLogger } from '../../../src/core/log';
import { scopedRecords } from '../../../src/core/records';
import { StateStore } from '../../../src/agent/state/store';

interface Rec {
  expires: number;
  n: number;
}

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'nsm-state-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const reaperLog = (reaped: string[]) => ({
  expiresOf: (r: Rec) => r.expires,
  reap: async (key: string) => {
    reaped.push(key);
  },
});

describe('StateStore', () => {
  it('records survive the store (a restart) as leftovers; claim takes one, with its value', async () => {
    const dir = tmp();
    const clock = new FakeClock();
    const a = new StateStore(dir, clock, silentLogger);
    const r = a.records<Rec>('kind');
    r.put('x', { expires: clock.now() + 1000, n: 1 });
    r.put('y/z', { expires: clock.now() + 1000, n: 2 });
    await a.close();

    const b = new StateStore(dir, clock, silentLogger);
    const again = b.records<Rec>('kind');
    expect(again.leftovers().sort()).toEqual([
      ['x', { expires: clock.now() + 1000, n: 1 }],
      ['y/z', { expires: clock.now() + 1000, n: 2 }],
    ]);
    expect(again.claim('y/z')).toEqual({ expires: clock.now() + 1000, n: 2 });
    expect(again.claim('y/z')).toBeUndefined();
    expect(again.leftovers().map(([k]) => k)).toEqual(['x']);
    await b.close();
  });

  it('writes of one key are coalesced and land in call order; delete removes the file', async () => {
    const dir = tmp();
    const s = new StateStore(dir, new FakeClock(), silentLogger);
    const r = s.records<Rec>('k');
    for (let i = 0; i < 50; i++) r.put('a', { expires: 0, n: i });
    await s.flush();
    expect(JSON.parse(readFileSync(path.join(dir, 'k', 'a.json'), 'utf8')).n).toBe(49);
    r.put('b', { expires: 0, n: 1 });
    r.delete('b');
    await s.flush();
    expect(existsSync(path.join(dir, 'k', 'b.json'))).toBe(false);
    expect(readdirSync(path.join(dir, 'k')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    await s.close();
  });

  it('a record put again unchanged is not written again; changed, deleted or failed, it is', async () => {
    const dir = tmp();
    const s = new StateStore(dir, new FakeClock(), silentLogger);
    const r = s.records<Rec>('k');
    const file = path.join(dir, 'k', 'a.json');
    r.put('a', { expires: 60_000, n: 1 });
    await s.flush();
    rmSync(file);
    r.put('a', { expires: 60_000, n: 1 });
    await s.flush();
    expect(existsSync(file)).toBe(false);
    r.put('a', { expires: 120_000, n: 1 });
    await s.flush();
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ expires: 120_000, n: 1 });
    r.delete('a');
    r.put('a', { expires: 120_000, n: 1 });
    await s.flush();
    expect(existsSync(file)).toBe(true);
    // The value is taken at put: a later change of the caller's object is not written.
    const v = { expires: 0, n: 5 };
    r.put('b', v);
    v.n = 6;
    await s.flush();
    expect(JSON.parse(readFileSync(path.join(dir, 'k', 'b.json'), 'utf8')).n).toBe(5);
    await s.close();
  });

  it('writes a put record behind, by itself, within milliseconds (no flush needed)', async () => {
    const dir = tmp();
    const s = new StateStore(dir, new FakeClock(), silentLogger);
    const r = s.records<Rec>('k');
    const file = path.join(dir, 'k', 'a.json');
    r.put('a', { expires: 0, n: 1 });
    expect(existsSync(file)).toBe(false); // not in the caller's turn
    const t0 = Date.now();
    while (!existsSync(file) && Date.now() - t0 < 2_000) await new Promise((res) => setTimeout(res, 2));
    expect(JSON.parse(readFileSync(file, 'utf8')).n).toBe(1);
    r.delete('a');
    while (existsSync(file) && Date.now() - t0 < 2_000) await new Promise((res) => setTimeout(res, 2));
    expect(existsSync(file)).toBe(false);
    await s.close();
  });

  it('writes of several keys and kinds go out together; a failed write is logged and written when put again', async () => {
    const dir = tmp();
    const lines: string[] = [];
    const log = createLogger({ level: 'warn', write: (l: string) => lines.push(l) });
    const s = new StateStore(dir, new FakeClock(), log);
    const r = s.records<Rec>('k');
    const q = s.records<Rec>('q');
    for (let i = 0; i < 20; i++) (i % 2 ? r : q).put(`n${i}`, { expires: 0, n: i });
    await s.flush();
    expect(readdirSync(path.join(dir, 'k')).length + readdirSync(path.join(dir, 'q')).length).toBe(20);
    rmSync(path.join(dir, 'k'), { recursive: true });
    r.put('a', { expires: 0, n: 1 });
    q.put('b', { expires: 0, n: 2 }); // same batch: not stopped by the failure
    await s.flush();
    expect(JSON.parse(readFileSync(path.join(dir, 'q', 'b.json'), 'utf8')).n).toBe(2);
    expect(lines.join('\n')).toMatch(/cannot write state record.*ENOENT/);
    mkdirSync(path.join(dir, 'k'));
    r.put('a', { expires: 0, n: 1 }); // unchanged, but not on disk: written
    await s.flush();
    expect(JSON.parse(readFileSync(path.join(dir, 'k', 'a.json'), 'utf8')).n).toBe(1);
    await s.close();
  });

  it('reaps leftovers nobody claims at their expiry, and deletes their records; claimed ones are kept', async () => {
    const dir = tmp();
    const clock = new FakeClock();
    const a = new StateStore(dir, clock, silentLogger);
    const r = a.records<Rec>('k');
    r.put('past', { expires: clock.now() - 1, n: 0 });
    r.put('soon', { expires: clock.now() + 5_000, n: 0 });
    r.put('claimed', { expires: clock.now() + 5_000, n: 0 });
    await a.close();

    const reaped: string[] = [];
    const b = new StateStore(dir, clock, silentLogger);
    const again = b.records<Rec>('k', reaperLog(reaped));
    clock.advance(0);
    await b.flush();
    expect(reaped).toEqual(['past']);
    expect(again.claim('claimed')).toBeTruthy();
    clock.advance(4_999);
    expect(reaped).toEqual(['past']);
    clock.advance(1);
    await b.flush();
    expect(reaped).toEqual(['past', 'soon']);
    expect(readdirSync(path.join(dir, 'k')).sort()).toEqual(['claimed.json']);
    await b.close();
  });

  it('a put of a leftover key replaces it and cancels its reaping', async () => {
    const dir = tmp();
    const clock = new FakeClock();
    const a = new StateStore(dir, clock, silentLogger);
    a.records<Rec>('k').put('x', { expires: clock.now() + 10, n: 1 });
    await a.close();
    const reaped: string[] = [];
    const b = new StateStore(dir, clock, silentLogger);
    const r = b.records<Rec>('k', reaperLog(reaped));
    r.put('x', { expires: clock.now() + 60_000, n: 2 });
    clock.advance(100);
    await b.flush();
    expect(reaped).toEqual([]);
    expect(r.leftovers()).toEqual([]);
    await b.close();
  });

  it('drops unreadable records and temporary files left by a killed writer', async () => {
    const dir = tmp();
    mkdirSync(path.join(dir, 'k'), { recursive: true });
    writeFileSync(path.join(dir, 'k', 'bad.json'), '{"half":');
    writeFileSync(path.join(dir, 'k', 'good.json.123.tmp'), '{}');
    writeFileSync(path.join(dir, 'k', 'good.json'), '{"expires":0,"n":7}');
    const s = new StateStore(dir, new FakeClock(), silentLogger);
    expect(s.records<Rec>('k').leftovers()).toEqual([['good', { expires: 0, n: 7 }]]);
    expect(readdirSync(path.join(dir, 'k'))).toEqual(['good.json']);
    await s.close();
  });

  it('scoped records see only their prefix', async () => {
    const s = new StateStore(tmp(), new FakeClock(), silentLogger);
    const base = s.records<Rec>('ipam');
    const ep1 = scopedRecords(base, 'ep1/');
    ep1.put('c1', { expires: 0, n: 1 });
    base.put('ep2/c2', { expires: 0, n: 2 });
    await s.close();
    const t = new StateStore(s.dir, new FakeClock(), silentLogger);
    expect(scopedRecords(t.records<Rec>('ipam'), 'ep1/').leftovers()).toEqual([['c1', { expires: 0, n: 1 }]]);
    await t.close();
  });

  it('refuses a state directory another live agent holds, takes over a dead one', async () => {
    const dir = tmp();
    // A process whose command line names nsm-agent stands in for the other agent.
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 20000)', 'nsm-agent'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 100));
      writeFileSync(path.join(dir, 'lock'), `${other.pid}\n`);
      expect(() => new StateStore(dir, new FakeClock(), silentLogger)).toThrow(/in use by another agent \(PID \d+\)/);
    } finally {
      other.kill('SIGKILL');
      await new Promise((r) => other.once('exit', r));
    }
    const s = new StateStore(dir, new FakeClock(), silentLogger);
    expect(readFileSync(path.join(dir, 'lock'), 'utf8').trim()).toBe(String(process.pid));
    await s.close();
    expect(existsSync(path.join(dir, 'lock'))).toBe(false);
  });
});
