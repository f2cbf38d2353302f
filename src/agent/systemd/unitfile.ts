/**
 * Reading systemd unit files the way systemd does, as far as the `[X-NetworkServiceMesh]`
 * section needs it: the unit search path, the fragment (or the template's for an instance),
 * masking, drop-ins (`<unit>.d/*.conf` and the template's, one file name overriding the same
 * name in lower-priority directories, applied in file-name order), comments, line
 * continuations, and "an empty assignment resets the list" (systemd.unit(5), systemd.syntax(7)).
 *
 * Used by the generator (which makes the drop-ins) and by `nsm-agent unit start` (which reads
 * the declaration when the unit starts), so both see the same section.
 */
import { lstatSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';

/** systemd's system unit search path (systemd-analyze unit-paths), without generator output. */
export const SYSTEM_UNIT_PATH = [
  '/etc/systemd/system.control',
  '/run/systemd/system.control',
  '/run/systemd/transient',
  '/etc/systemd/system',
  '/etc/systemd/system.attached',
  '/run/systemd/system',
  '/run/systemd/system.attached',
  '/usr/local/lib/systemd/system',
  '/usr/lib/systemd/system',
  '/lib/systemd/system',
];

/**
 * The search path: $SYSTEMD_UNIT_PATH if set (colon-separated; an empty element stands for
 * the default list, as in systemd), else SYSTEM_UNIT_PATH. Duplicates (/lib -> /usr/lib on
 * merged-/usr systems) are dropped.
 */
export function unitSearchPath(env: NodeJS.ProcessEnv = process.env): string[] {
  const raw = env['SYSTEMD_UNIT_PATH'];
  const dirs = raw === undefined || raw === '' ? SYSTEM_UNIT_PATH : raw.split(':').flatMap((d) => (d === '' ? SYSTEM_UNIT_PATH : [d]));
  const seen = new Set<string>();
  const out: string[] = [];
  for (const d of dirs) {
    let key = d;
    try {
      key = realpathSync.native(d);
    } catch {
      /* missing directories are kept by name */
    }
    if (seen.has(key)) continue;
    seen.add(key);
    // normalized once here, so that file paths are made from it by concatenation (joinUnitPath)
    out.push(path.normalize(d).replace(/(.)\/$/, '$1'));
  }
  return out;
}

export interface Assignment {
  key: string;
  value: string;
  file: string;
  line: number;
}

/** One parsed file: its sections in order, each with its assignments in order. */
export type ParsedUnit = Map<string, Assignment[]>;

export class UnitFileError extends Error {
  override readonly name = 'UnitFileError';
  constructor(
    readonly file: string,
    readonly line: number,
    reason: string,
  ) {
    super(`${file}:${line}: ${reason}`);
  }
}

/**
 * Parses unit file text (systemd.syntax(7)): `[Section]` headers, `Key=Value` with blanks
 * around `=` dropped, `#`/`;` comment lines, a trailing backslash joining the next line with a
 * space (comment lines inside a continuation are skipped). Values are kept as written.
 */
export function parseUnitText(text: string, file = '<text>'): ParsedUnit {
  const out: ParsedUnit = new Map();
  let section: Assignment[] | undefined;
  const handle = (line: string, lineNo: number) => {
    if (line.startsWith('[')) {
      if (!line.endsWith(']') || line.length < 3) throw new UnitFileError(file, lineNo, `bad section header ${JSON.stringify(line)}`);
      const name = line.slice(1, -1);
      section = out.get(name) ?? [];
      out.set(name, section);
      return;
    }
    const eq = line.indexOf('=');
    if (eq <= 0) throw new UnitFileError(file, lineNo, `expected Key=Value, got ${JSON.stringify(line)}`);
    if (!section) throw new UnitFileError(file, lineNo, 'assignment outside of a section');
    section.push({ key: line.slice(0, eq).trim(), value: line.slice(eq + 1).trim(), file, line: lineNo });
  };
  const lines = text.split(/\r?\n/);
  let buf: string | undefined;
  let start = 0;
  for (let i = 0; i < lines.length; i++) {
    const t = lines[i]!.trim();
    const comment = t.startsWith('#') || t.startsWith(';');
    if (buf === undefined) {
      if (t === '' || comment) continue;
      buf = '';
      start = i + 1;
    } else if (comment) {
      continue; // comment lines inside a continuation are skipped
    }
    if (t.endsWith('\\')) {
      buf += t.slice(0, -1) + ' ';
      continue;
    }
    buf += t;
    handle(buf.trim(), start);
    buf = undefined;
  }
  if (buf !== undefined && buf.trim() !== '') handle(buf.trim(), start);
  return out;
}

export function parseUnitFile(file: string): ParsedUnit {
  return parseUnitText(readFileSync(file, 'utf8'), file);
}

/** `foo@bar.service` -> `foo@.service`; undefined for names that are not instances. */
export function templateOf(unit: string): string | undefined {
  const at = unit.indexOf('@');
  const dot = unit.lastIndexOf('.');
  if (at < 0 || dot < at) return undefined;
  if (at + 1 === dot) return undefined; // already a template
  return unit.slice(0, at + 1) + unit.slice(dot);
}

export function isTemplate(unit: string): boolean {
  const at = unit.indexOf('@');
  return at >= 0 && unit.lastIndexOf('.') === at + 1;
}

/** A unit name systemd accepts (unit_name_is_valid), restricted to the types we handle. */
export function isValidUnitName(unit: string): boolean {
  return unit.length <= 255 && /^[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\@-]*)?\.service$/.test(unit);
}

/** A link to /dev/null or an empty file masks a unit (the link is resolved only if it is one). */
function isMasked(file: string): boolean {
  try {
    const st = lstatSync(file);
    if (!st.isSymbolicLink()) return st.size === 0;
    return realpathSync.native(file) === '/dev/null' || statSync(file).size === 0;
  } catch {
    return false;
  }
}

/**
 * The entries of the search path's directories, each read once: a scan over every unit asks it
 * which names exist instead of trying each name in each directory (most of which have neither
 * the unit nor its `.d`). It also keeps the bytes of the fragments the scan read, so that a
 * fragment that is a regular file is read once, for both its masking and its section, and not
 * stat'ed at all.
 */
export class UnitDirListing {
  /** Per directory: entry name -> whether it is a regular file. */
  private readonly dirs = new Map<string, ReadonlyMap<string, boolean>>();
  private readonly contents = new Map<string, Buffer | undefined>();

  private dir(dir: string): ReadonlyMap<string, boolean> {
    let entries = this.dirs.get(dir);
    if (!entries) {
      const found = new Map<string, boolean>();
      try {
        for (const e of readdirSync(dir, { withFileTypes: true })) found.set(e.name, e.isFile());
      } catch {
        /* a directory that cannot be read has no units */
      }
      this.dirs.set(dir, (entries = found));
    }
    return entries;
  }

  /** The directory's entry names; none if it cannot be read. */
  entries(dir: string): Iterable<string> {
    return this.dir(dir).keys();
  }

  has(dir: string, name: string): boolean {
    return this.dir(dir).has(name);
  }

  /**
   * Whether `name` in `dir` masks its unit, or undefined if only a stat can tell (a link,
   * anything but a regular file). A regular file masks when it is empty; it is read to know.
   */
  masks(dir: string, name: string): boolean | undefined {
    if (!this.dir(dir).get(name)) return undefined;
    return this.read(joinUnitPath(dir, name))?.length === 0;
  }

  /** The bytes of a file this listing read (masks()), else undefined. */
  readBefore(file: string): Buffer | undefined {
    return this.contents.get(file);
  }

  private read(file: string): Buffer | undefined {
    if (!this.contents.has(file)) {
      let bytes: Buffer | undefined;
      try {
        bytes = readFileSync(file);
      } catch {
        bytes = undefined;
      }
      this.contents.set(file, bytes);
    }
    return this.contents.get(file);
  }
}

/**
 * `dir`/`name` for a directory of the search path and a unit or file name (no slashes in it):
 * a plain concatenation, for scans that ask it of hundreds of units.
 */
function joinUnitPath(dir: string, name: string): string {
  return dir.endsWith('/') ? dir + name : `${dir}/${name}`;
}

export interface UnitFiles {
  unit: string;
  /** The main file (the template's for an instance); undefined if there is none. */
  fragment: string | undefined;
  /** Drop-in files in the order systemd applies them. */
  dropIns: string[];
  masked: boolean;
}

/**
 * Finds the fragment and drop-ins of `unit` along the search path. `listing`: directory
 * entries read beforehand (a scan over many units); without it each name is looked up.
 */
export function findUnitFiles(unit: string, searchPath: string[] = unitSearchPath(), listing?: UnitDirListing): UnitFiles {
  const template = templateOf(unit);
  let fragment: string | undefined;
  let masked = false;
  for (const name of template ? [unit, template] : [unit]) {
    for (const dir of searchPath) {
      // the listing first: a scan asks for every unit in every directory, and most have none
      if (listing && !listing.has(dir, name)) continue;
      const p = joinUnitPath(dir, name);
      if (!listing && !lstatSync(p, { throwIfNoEntry: false })) continue;
      if (listing?.masks(dir, name) ?? isMasked(p)) masked = true;
      else fragment = p;
      break;
    }
    if (fragment || masked) break;
  }
  const byName = new Map<string, string>();
  for (const dir of searchPath) {
    for (const name of template ? [unit, template] : [unit]) {
      if (listing && !listing.has(dir, `${name}.d`)) continue;
      const d = joinUnitPath(dir, `${name}.d`);
      let entries: string[];
      try {
        entries = readdirSync(d);
      } catch {
        continue;
      }
      for (const f of entries) {
        if (!f.endsWith('.conf') || byName.has(f)) continue;
        byName.set(f, joinUnitPath(d, f));
      }
    }
  }
  const dropIns = [...byName.keys()]
    .sort()
    .map((k) => byName.get(k)!)
    .filter((p) => !isMasked(p));
  return { unit, fragment, dropIns, masked };
}

/** The assignments of `section` across the fragment and the drop-ins, in order. */
export function sectionOf(files: UnitFiles, section: string): Assignment[] {
  const out: Assignment[] = [];
  for (const f of [files.fragment, ...files.dropIns]) {
    if (!f) continue;
    out.push(...(parseUnitFile(f).get(section) ?? []));
  }
  return out;
}

/** Every `.service` unit name (fragments, templates and drop-in-only names) along the path. */
export function listServiceUnits(searchPath: string[] = unitSearchPath(), listing = new UnitDirListing()): string[] {
  const names = new Set<string>();
  for (const dir of searchPath) {
    for (const e of listing.entries(dir)) {
      const name = e.endsWith('.service.d') ? e.slice(0, -2) : e;
      if (name.endsWith('.service') && isValidUnitName(name)) names.add(name);
    }
  }
  return [...names].sort();
}
