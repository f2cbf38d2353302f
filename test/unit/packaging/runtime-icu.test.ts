/**
 * The packaged runtime's English-only ICU data (scripts/runtime-icu.mjs), made from this test's
 * own Node: the package is found by its header, cut to root/English plus the non-locale data,
 * written over the original, and the patched runtime behaves as the original in English and
 * falls back to English for other locales. Skipped when this Node embeds no ICU data package
 * (a small-icu or system-icu build). Needs icupkg and genrb (icu-devtools).
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as icu from '../../../scripts/runtime-icu.mjs';

interface IcuPackage { offset: number; length: number; name: string; items: number }
const findIcuPackage = icu.findIcuPackage as (b: Buffer) => IcuPackage | null;
const dynamicSymbol = icu.dynamicSymbol as (b: Buffer, re: RegExp) => { name: string; offset: number; size: number } | null;
const trimRuntimeIcu = icu.trimRuntimeIcu as (node: string) => { fullBytes: number; englishBytes: number | null; englishItems: number } | null;
type Probe = { en: Record<string, unknown>; others: Record<string, unknown>[]; any: Record<string, unknown> };
const checkEnglishRuntime = icu.checkEnglishRuntime as (a: string, b: string) => { full: Probe; small: Probe };

const original = readFileSync(process.execPath);
const embedded = findIcuPackage(original);
const dir = mkdtempSync(path.join(os.tmpdir(), 'nsmt-icu-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The item names of the ICU package inside the runtime `node`. */
function items(node: string): string[] {
  const bin = readFileSync(node);
  const pkg = findIcuPackage(bin)!;
  const sub = mkdtempSync(path.join(dir, 'list-'));
  const dat = path.join(sub, `${pkg.name}.dat`);
  writeFileSync(dat, bin.subarray(pkg.offset, pkg.offset + pkg.length));
  return execFileSync('icupkg', ['--ignore-deps', '-l', dat], { encoding: 'utf8' }).split('\n').filter(Boolean);
}

describe('runtime ICU data', () => {
  it('finds nothing in a file without an ICU data package', () => {
    expect(findIcuPackage(Buffer.from('\x7fELF no ICU here, CmnD alone is not a header'))).toBeNull();
  });

  it.skipIf(!embedded)('locates the package by its header, and its end by the exported symbol', () => {
    expect(embedded!.name).toMatch(/^icudt\d+l$/);
    expect(embedded!.items).toBeGreaterThan(1000);
    const symbol = dynamicSymbol(original, /^icudt\d+_dat$/)!;
    expect(symbol.offset).toBe(embedded!.offset);
    expect(embedded!.length).toBe(symbol.size);
    expect(original.subarray(embedded!.offset + 12, embedded!.offset + 16).toString('latin1')).toBe('CmnD');
  });

  it.skipIf(!embedded)(
    'cuts the runtime to English and the non-locale data, which still works',
    () => {
      const node = path.join(dir, 'node');
      copyFileSync(process.execPath, node);
      const r = trimRuntimeIcu(node)!;
      expect(r.englishBytes).toBeLessThan(r.fullBytes / 4);
      expect(r.englishItems).toBeLessThan(200);
      expect(readFileSync(node).length).toBe(original.length);

      const left = items(node);
      for (const kept of ['root.res', 'en.res', 'en_US_POSIX.res', 'coll/root.res', 'coll/ucadata.icu', 'zone/en.res', 'supplementalData.res', 'zoneinfo64.res', 'plurals.res', 'uts46.nrm', 'nfkc.nrm', 'brkitr/word.brk', 'brkitr/root.res']) {
        expect(left).toContain(kept);
      }
      for (const gone of ['de.res', 'coll/zh.res', 'zone/fr.res', 'translit/root.res', 'brkitr/cjdict.dict', 'unames.icu']) expect(left).not.toContain(gone);
      expect(left.filter((i) => i.endsWith('.cnv'))).toEqual([]);

      const { small } = checkEnglishRuntime(process.execPath, node); // throws on any difference
      expect(small.en['month']).toBe('January');
      expect(small.others.map((o) => o['resolved'])).toEqual(small.others.map(() => 'en-US'));
      expect(small.any['idn']).toEqual(['xn--mnchen-3ya.example', 'xn--r8jz45g.xn--zckzah', 'münchen.de']);
      expect(small.any['dateToString']).toEqual([expect.stringContaining('(Central European Standard Time)'), expect.stringContaining('(Central European Summer Time)')]);

      // Trimming again leaves an English runtime as it is.
      const before = readFileSync(node);
      expect(trimRuntimeIcu(node)!.englishBytes).toBeNull();
      expect(readFileSync(node).equals(before)).toBe(true);
    },
    180_000,
  );
});
