// The packaged runtime's ICU data, cut down to English as Node's own small-icu builds are.
//
// A Node built with full-icu embeds ICU's common data package (icudt<NN>l.dat: a header whose
// dataFormat is "CmnD", a table of contents, then one item per locale bundle, converter,
// dictionary ...) in its read-only data, exported as the symbol icudt<NN>_dat. ICU reads it
// through that symbol and needs nothing but the table of contents, so a smaller valid package
// written over it (the rest zeroed) is what a small-icu build would have linked in.
//
// What stays, following Node's tools/icu/icu_small.json, with the break iterators kept:
// - locale data of root and English (root, en, en_US, en_US_POSIX) in every locale tree, and
//   each tree's shared pool; every tree's res_index lists only those locales, so ICU and V8
//   report English as the only available locale and resolve any other to it;
// - all non-locale data: supplemental data, time zones, plurals, numbering systems, units,
//   normalization (nfkc*, uts46 for IDN in URLs), root collation (coll/ucadata.icu), emoji and
//   layout properties, the break iterator rules (brkitr/*.brk).
// What goes: every other locale, charset converters (Node's TextDecoder then knows UTF-8,
// UTF-16 and Latin-1 only), converter aliases, stringprep profiles, confusables, the
// transliterators, the CJK/Thai/Lao/Khmer/Burmese word dictionaries, character names, gender
// lists.
//
// Needs icupkg and genrb (Debian's icu-devtools). The package and resource bundle formats are
// stable across ICU versions, so the build host's tools handle a runtime's newer ICU data; the
// check at the end (checkEnglishRuntime) runs the result.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Locales kept in every locale tree: root and English (the default locale, POSIX included). */
export const KEPT_LOCALES = ['root', 'en', 'en_US', 'en_US_POSIX'];

/** Non-locale items that go, by their name inside the package (without the icudtNNl/ prefix). */
const DROPPED_ITEMS = [
  /^[^/]+\.cnv$/, // charset converters
  /^cnvalias\.icu$/,
  /^[^/]+\.spp$/, // stringprep profiles
  /^confusables\.cfu$/,
  /^translit\//,
  /^brkitr\/[^/]+\.dict$/, // word dictionaries for scripts without spaces
  /^unames\.icu$/,
  /^genderList\.res$/,
  /^postalCodeData\.res$/,
];

/**
 * Removed items that kept ones may still name: brkitr/root.res lists the word dictionaries, and
 * ICU's break iterators treat a dictionary that cannot be loaded as absent (text in those
 * scripts then breaks per character cluster instead of per word).
 */
const MAY_BE_MISSING = [/^brkitr\/[^/]+\.dict$/];

/** ICU's data header: the 16-bit header size, then the magic bytes 0xda 0x27. */
const DATA_MAGIC = [0xda, 0x27];

/** Where the ICU common data package lies in `binary`; null when the runtime embeds none. */
export function findIcuPackage(binary) {
  const found = [];
  for (let at = binary.indexOf('CmnD'); at !== -1; at = binary.indexOf('CmnD', at + 1)) {
    const start = at - 12; // UDataInfo.dataFormat sits 12 bytes into the header
    if (start < 0 || binary[start + 2] !== DATA_MAGIC[0] || binary[start + 3] !== DATA_MAGIC[1]) continue;
    if (binary[start + 8] !== 0 || binary[start + 10] !== 2) continue; // little-endian, 16-bit UChar
    const headerSize = binary.readUInt16LE(start);
    const toc = start + headerSize;
    if (toc + 12 > binary.length) continue;
    const count = binary.readUInt32LE(toc);
    const firstName = binary.subarray(toc + binary.readUInt32LE(toc + 4), toc + binary.readUInt32LE(toc + 4) + 64).toString('latin1');
    const m = /^(icudt\d+l)\//.exec(firstName);
    if (count > 0 && m) found.push({ offset: start, name: m[1], items: count });
  }
  if (found.length === 0) return null;
  if (found.length > 1) throw new Error(`${found.length} ICU data packages found in the runtime (${found.map((f) => f.name).join(', ')}); expected one`);
  const pkg = found[0];
  const symbol = dynamicSymbol(binary, new RegExp(`^${pkg.name.replace(/^icudt(\d+)l$/, 'icudt$1')}_dat$`));
  if (!symbol) throw new Error(`the runtime exports no ${pkg.name.slice(0, -1)}_dat symbol: cannot tell where its ICU data ends`);
  if (symbol.offset !== pkg.offset) throw new Error(`${symbol.name} is at file offset ${symbol.offset}, the ICU data header at ${pkg.offset}`);
  return { ...pkg, length: symbol.size };
}

/** A defined symbol of the ELF64 file's .dynsym whose name matches `re`: file offset and size. */
export function dynamicSymbol(elf, re) {
  if (elf.subarray(0, 4).toString('latin1') !== '\x7fELF' || elf[4] !== 2 || elf[5] !== 1) throw new Error('not a little-endian ELF64 file');
  const shoff = Number(elf.readBigUInt64LE(0x28));
  const shentsize = elf.readUInt16LE(0x3a);
  const shnum = elf.readUInt16LE(0x3c);
  const section = (i) => {
    const s = shoff + i * shentsize;
    return { type: elf.readUInt32LE(s + 4), addr: Number(elf.readBigUInt64LE(s + 16)), offset: Number(elf.readBigUInt64LE(s + 24)), size: Number(elf.readBigUInt64LE(s + 32)), link: elf.readUInt32LE(s + 40), entsize: Number(elf.readBigUInt64LE(s + 56)) };
  };
  const SHT_DYNSYM = 11;
  for (let i = 0; i < shnum; i++) {
    const sec = section(i);
    if (sec.type !== SHT_DYNSYM) continue;
    const strtab = section(sec.link);
    for (let e = sec.offset; e < sec.offset + sec.size; e += sec.entsize) {
      const shndx = elf.readUInt16LE(e + 6);
      if (shndx === 0 || shndx >= 0xff00) continue; // undefined, absolute or common
      const nameAt = strtab.offset + elf.readUInt32LE(e);
      const name = elf.subarray(nameAt, elf.indexOf(0, nameAt)).toString('latin1');
      if (!re.test(name)) continue;
      const home = section(shndx);
      return { name, offset: Number(elf.readBigUInt64LE(e + 8)) - home.addr + home.offset, size: Number(elf.readBigUInt64LE(e + 16)) };
    }
  }
  return null;
}

/**
 * The locale names a tree's res_index.res lists: the keys of its InstalledLocales table. Reads
 * ICU's binary resource bundle layout (formatVersion 2 and 3): after the data header, the root
 * resource, the indexes (indexes[1]: end of the key strings, in 32-bit units), the key strings,
 * then the 16-bit units; a resource is a 4-bit type and a 28-bit offset.
 */
export function installedLocales(resIndex) {
  if (resIndex.subarray(12, 16).toString('latin1') !== 'ResB') throw new Error('res_index.res is not a resource bundle');
  const data = resIndex.subarray(resIndex.readUInt16LE(0));
  const units16 = data.readUInt32LE(8) * 4;
  const key = (at) => data.subarray(at, data.indexOf(0, at)).toString('latin1');
  const TABLE = 2;
  const TABLE32 = 4;
  const TABLE16 = 5;
  /** A table's entries as [key, 32-bit resource or null for 16-bit values]. */
  const table = (res) => {
    const type = res >>> 28;
    const off = res & 0x0fffffff;
    if (type === TABLE) {
      const n = data.readUInt16LE(off * 4);
      const values = (off * 4 + 2 + 2 * n + 3) & ~3;
      return Array.from({ length: n }, (_, i) => [key(data.readUInt16LE(off * 4 + 2 + 2 * i)), data.readUInt32LE(values + 4 * i)]);
    }
    if (type === TABLE32) {
      const n = data.readInt32LE(off * 4);
      return Array.from({ length: n }, (_, i) => [key(data.readInt32LE(off * 4 + 4 + 4 * i)), data.readUInt32LE(off * 4 + 4 + 4 * n + 4 * i)]);
    }
    if (type === TABLE16) {
      const at = units16 + off * 2;
      const n = data.readUInt16LE(at);
      return Array.from({ length: n }, (_, i) => [key(data.readUInt16LE(at + 2 + 2 * i)), null]);
    }
    throw new Error(`res_index.res: resource type ${type} is not a table`);
  };
  const installed = table(data.readUInt32LE(0)).find(([k]) => k === 'InstalledLocales');
  if (!installed || installed[1] === null) throw new Error('res_index.res has no InstalledLocales table');
  return table(installed[1]).map(([k]) => k);
}

function run(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 * 2 ** 20 });
  } catch (err) {
    if (err.code === 'ENOENT') throw new Error(`${cmd} not found: install icu-devtools (it cuts the runtime's ICU data)`);
    throw err;
  }
}

/** The item names a tree's res_index.res gives as locales, e.g. 'coll/de.res' for tree 'coll/'. */
function localeItems(dir, dat, prefix) {
  const out = path.join(dir, 'x');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out);
  run('icupkg', ['--ignore-deps', '-d', out, '-x', `${prefix}res_index.res`, dat]);
  return installedLocales(readFileSync(path.join(out, prefix, 'res_index.res'))).map((l) => `${prefix}${l}.res`);
}

/**
 * Writes the English-only package built from `dat` (a file named <package name>.dat) and returns
 * its bytes, or null when `dat` holds nothing to remove. Items that depend on a removed one (a
 * locale's children, aliases to it) go too, as icupkg names them.
 */
export function englishPackage(dat) {
  const dir = path.dirname(dat);
  const items = run('icupkg', ['--ignore-deps', '-l', dat]).split('\n').map((l) => l.trim()).filter(Boolean);
  const trees = items.filter((i) => /(^|\/)res_index\.res$/.test(i)).map((i) => i.slice(0, -'res_index.res'.length));
  const kept = new Set(KEPT_LOCALES.map((l) => `${l}.res`));
  const remove = new Set(items.filter((i) => DROPPED_ITEMS.some((re) => re.test(i))));
  for (const prefix of trees) {
    for (const item of localeItems(dir, dat, prefix)) if (!kept.has(item.slice(prefix.length)) && items.includes(item)) remove.add(item);
  }
  if (remove.size === 0) return null;
  for (let round = 0; ; round++) {
    const list = path.join(dir, 'remove.txt');
    writeFileSync(list, [...remove].join('\n') + '\n');
    const r = spawnSync('icupkg', ['-r', list, dat], { encoding: 'utf8' });
    if (r.error) throw r.error;
    if (r.status === 0) break;
    const missing = [...r.stderr.matchAll(/^Item (\S+) depends on missing item (\S+)/gm)].map((m) => ({ item: m[1], needs: m[2] }));
    const unmet = missing.filter((d) => !MAY_BE_MISSING.some((re) => re.test(d.needs)));
    if (missing.length > 0 && unmet.length === 0) {
      run('icupkg', ['--ignore-deps', '-r', list, dat]);
      break;
    }
    for (const d of unmet) if (kept.has(d.item.replace(/^.*\//, ''))) throw new Error(`kept item ${d.item} needs ${d.needs}, which is removed`);
    const before = remove.size;
    for (const d of unmet) remove.add(d.item);
    if (remove.size === before || round > 10) throw new Error(`icupkg -r failed: ${r.stderr.trim().split('\n').slice(0, 5).join('; ')}`);
  }
  // Each tree's index now names exactly the locales still in it.
  const left = new Set(run('icupkg', ['--ignore-deps', '-l', dat]).split('\n').map((l) => l.trim()));
  const src = path.join(dir, 'index');
  for (const prefix of trees) {
    const locales = KEPT_LOCALES.filter((l) => left.has(`${prefix}${l}.res`));
    const txt = `res_index:table(nofallback) {\n    InstalledLocales {\n${locales.map((l) => `        ${l} {""}\n`).join('')}    }\n}\n`;
    const treeDir = path.join(src, prefix);
    mkdirSync(treeDir, { recursive: true });
    writeFileSync(path.join(treeDir, 'res_index.txt'), txt);
    run('genrb', ['-q', '-s', treeDir, '-d', treeDir, 'res_index.txt']);
    run('icupkg', ['--ignore-deps', '-s', src, '-a', `${prefix}res_index.res`, dat]);
  }
  return readFileSync(dat);
}

/**
 * Replaces the full ICU data embedded in the runtime `node` (a file, changed in place) with
 * the English-only package. Returns the sizes (englishBytes null when the data was English-only
 * already and the file is left as it is), or null when the runtime embeds no ICU data (built with
 * small-icu, system-icu or without Intl).
 */
export function trimRuntimeIcu(node) {
  const binary = readFileSync(node);
  const pkg = findIcuPackage(binary);
  if (!pkg) return null;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nsm-icu-'));
  try {
    const dat = path.join(dir, `${pkg.name}.dat`); // icupkg takes the item prefix from the name
    writeFileSync(dat, binary.subarray(pkg.offset, pkg.offset + pkg.length));
    const small = englishPackage(dat);
    if (!small) return { name: pkg.name, fullBytes: pkg.length, englishBytes: null, fullItems: pkg.items, englishItems: pkg.items };
    if (small.length > pkg.length) throw new Error(`the English ICU package (${small.length} bytes) is larger than the runtime's (${pkg.length})`);
    small.copy(binary, pkg.offset);
    binary.fill(0, pkg.offset + small.length, pkg.offset + pkg.length);
    writeFileSync(node, binary);
    return { name: pkg.name, fullBytes: pkg.length, englishBytes: small.length, fullItems: pkg.items, englishItems: small.readUInt32LE(small.readUInt16LE(0)) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * What the check runs in a runtime: Intl in English and in other locales, and what does not
 * depend on a locale but on ICU data (time zone names, normalization, case mapping, IDN, regular
 * expression properties), with a crypto and TLS smoke test. Prints JSON.
 */
const PROBE = String.raw`
const d = new Date(Date.UTC(2026, 0, 15, 13, 4, 5));
const intl = (loc) => ({
  date: new Intl.DateTimeFormat(loc, { dateStyle: 'full', timeStyle: 'long', timeZone: 'America/New_York' }).format(d),
  month: new Intl.DateTimeFormat(loc, { month: 'long' }).format(d),
  skeleton: new Intl.DateTimeFormat(loc, { year: 'numeric', month: 'short', day: 'numeric', weekday: 'short', hour: '2-digit', minute: '2-digit', second: '2-digit', fractionalSecondDigits: 3, timeZoneName: 'shortOffset', timeZone: 'Asia/Kolkata' }).format(d),
  dayPeriod: new Intl.DateTimeFormat(loc, { hour: 'numeric', dayPeriod: 'long', timeZone: 'UTC' }).format(d),
  range: new Intl.DateTimeFormat(loc, { dateStyle: 'medium', timeZone: 'UTC' }).formatRange(d, new Date(d.getTime() + 3 * 86400e3)),
  resolved: new Intl.DateTimeFormat(loc).resolvedOptions().locale,
  currency: new Intl.NumberFormat(loc, { style: 'currency', currency: 'EUR' }).format(1234567.891),
  unit: new Intl.NumberFormat(loc, { style: 'unit', unit: 'megabyte', unitDisplay: 'long' }).format(12.5),
  compact: new Intl.NumberFormat(loc, { notation: 'compact' }).format(1234567),
  relative: new Intl.RelativeTimeFormat(loc, { numeric: 'auto' }).format(-1, 'day'),
  list: new Intl.ListFormat(loc).format(['a', 'b', 'c']),
  names: [new Intl.DisplayNames(loc, { type: 'region' }).of('DE'), new Intl.DisplayNames(loc, { type: 'language' }).of('fr'), new Intl.DisplayNames(loc, { type: 'currency' }).of('JPY')],
  collation: ['b', 'a', 'ä', 'Z', 'z', 'résumé', 'resume'].sort(new Intl.Collator(loc).compare).join(' '),
  words: [...new Intl.Segmenter(loc, { granularity: 'word' }).segment('Hello, wide world!')].map((s) => s.segment).join('|'),
  graphemes: [...new Intl.Segmenter(loc, { granularity: 'grapheme' }).segment('e\u0301\u{1F469}\u200D\u{1F469}\u200D\u{1F467}')].length,
  sentences: [...new Intl.Segmenter(loc, { granularity: 'sentence' }).segment('One. Two? Three!')].length,
  dateString: d.toLocaleString(loc, { timeZone: 'UTC' }),
  numberString: (1234.5).toLocaleString(loc),
});
const crypto = require('node:crypto');
const tls = require('node:tls');
const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signed = crypto.sign('sha256', Buffer.from('x'), privateKey);
console.log(JSON.stringify({
  en: intl('en-US'),
  others: ['de-DE', 'fr', 'ja-JP', 'zh-Hant-TW', 'ar-EG', 'th'].map(intl),
  any: {
    defaultLocale: new Intl.DateTimeFormat().resolvedOptions().locale,
    dateToString: [d.toString(), new Date(Date.UTC(2026, 6, 1)).toString()],
    timeZones: Intl.supportedValuesOf('timeZone').length,
    plurals: ['en', 'de', 'fr', 'ar', 'cy'].map((l) => [new Intl.PluralRules(l, { type: 'ordinal' }).select(22), new Intl.PluralRules(l).select(2)]),
    normalize: ['A\u030a'.normalize('NFC'), '\ufb01'.normalize('NFKD'), '\u00c5'.normalize('NFD'), '\u2460'.normalize('NFKC')],
    caseMapping: ['ÀÉÎÕÜ İSTANBUL ΣΑΣ'.toLowerCase(), 'straße ǆ'.toUpperCase(), 'I'.toLocaleLowerCase('tr'), 'i'.toLocaleUpperCase('en')],
    idn: [new URL('https://münchen.example/ä?q=ü').host, new URL('https://例え.テスト/').host, require('node:url').domainToUnicode('xn--mnchen-3ya.de')],
    regex: [/\p{Script=Greek}/u.test('α'), /\p{Emoji}/u.test('\u{1F600}'), /^\p{RGI_Emoji}$/v.test('\u{1F469}\u200D\u{1F469}\u200D\u{1F467}'), /\p{Lu}/u.test('É')],
    textDecoder: [new TextDecoder('utf-8').decode(Buffer.from('hé')), new TextDecoder('utf-16le').decode(Buffer.from('hé', 'utf16le'))],
    crypto: [crypto.createHash('sha256').update('x').digest('hex'), crypto.verify('sha256', Buffer.from('x'), publicKey, signed)],
    tls: [tls.getCiphers().includes('tls_aes_128_gcm_sha256'), typeof tls.createSecureContext({}).context],
  },
}));
`;

/** Runs the probe in the runtime `node`; a crash or any error fails the check. */
export function probeRuntime(node) {
  const r = spawnSync(node, ['-e', PROBE], { encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C', TZ: 'Europe/Berlin' } });
  if (r.status !== 0) throw new Error(`${node}: the ICU check ${r.signal ? `died of ${r.signal}` : `exited ${r.status}`}: ${r.stderr.trim().split('\n').slice(-3).join(' ')}`);
  return JSON.parse(r.stdout);
}

/**
 * Checks the English-only runtime against the original it was made from: everything in English
 * and everything that depends on no locale bundle (plural rules are supplemental data, kept for
 * every language) gives the same results; any other locale falls back to English without
 * failing. Returns the two probes.
 */
export function checkEnglishRuntime(original, english) {
  const full = probeRuntime(original);
  const small = probeRuntime(english);
  const differences = [];
  const compare = (what, a, b) => {
    for (const key of Object.keys(a)) if (JSON.stringify(a[key]) !== JSON.stringify(b[key])) differences.push(`${what}.${key}: ${JSON.stringify(b[key])}, expected ${JSON.stringify(a[key])}`);
  };
  compare('en', full.en, small.en);
  compare('any', full.any, small.any);
  small.others.forEach((o, i) => compare(`others[${i}]`, small.en, o));
  if (differences.length) throw new Error(`the English-only runtime ${english} differs from ${original}: ${differences.join('; ')}`);
  return { full, small };
}
