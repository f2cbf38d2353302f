/**
 * The layers of src/ import only downwards. Reads every import, export-from, require and
 * dynamic import with a relative path in src/ and checks where it lands.
 */
import { describe, it, expect } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
const SRC = path.join(ROOT, 'src');

/** Top-level folders of src/ each layer may import (besides npm packages and node: modules). */
const ALLOWED: Record<string, (to: string) => boolean> = {
  api: (to) => to === 'api',
  core: (to) => ['core', 'api'].includes(to),
  // the kernel door: itself, core, and the native addon outside src/
  sys: (to) => ['sys', 'core', 'native'].includes(to),
  spire: (to) => ['spire', 'core', 'api'].includes(to),
  mechanisms: (to) => to !== 'agent',
  networkservice: (to) => to !== 'agent',
  registry: (to) => to !== 'agent',
  // vL3 protocol pieces (vl3-ipam server and lease): the agent wires them, never the reverse
  vl3: (to) => to !== 'agent',
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

/** Relative module specifiers of a TypeScript source, comments left out. */
function relativeImports(text: string): string[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const out: string[] = [];
  for (const m of code.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\(\s*)['"]([^'"]+)['"]/g)) {
    if (m[1]?.startsWith('.')) out.push(m[1]);
  }
  return out;
}

/** The src/ folder an import lands in, or the first path segment outside src/. */
function layerOf(abs: string): string {
  const rel = path.relative(SRC, abs);
  if (!rel.startsWith('..')) return rel.split(path.sep)[0] as string;
  return path.relative(ROOT, abs).split(path.sep)[0] as string;
}

interface Edge {
  from: string;
  to: string;
  where: string;
}

function edges(): Edge[] {
  return sourceFiles(SRC).flatMap((file) =>
    relativeImports(readFileSync(file, 'utf8')).map((spec) => ({
      from: layerOf(file),
      to: layerOf(path.resolve(path.dirname(file), spec)),
      where: `${path.relative(ROOT, file)}: '${spec}'`,
    })),
  );
}

describe('layering of src/', () => {
  it('finds the imports it checks', () => {
    expect(relativeImports("import { a } from './a';\nexport { b } from '../b';\nimport type {\n  C,\n} from '../c/d';\nconst e = require('../e');\n// import x from '../f'\n/* from '../g' */\nimport 'node:fs';")).toEqual([
      './a',
      '../b',
      '../c/d',
      '../e',
    ]);
    const all = edges();
    expect(all.some((e) => e.from === 'spire' && e.to === 'core')).toBe(true);
    expect(all.some((e) => e.from === 'agent' && e.to === 'spire')).toBe(true);
  });

  it('only src/sys loads the netlink package or the native addon', () => {
    const wrong = sourceFiles(SRC)
      .filter((f) => layerOf(f) !== 'sys')
      .flatMap((file) => {
        const code = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
        const hits = [...code.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\(\s*)['"]([^'"]+)['"]/g)]
          .map((m) => m[1] as string)
          .filter((spec) => spec === 'netlink' || spec.startsWith('netlink/') || (spec.startsWith('.') && layerOf(path.resolve(path.dirname(file), spec)) === 'native'));
        return hits.map((spec) => `${path.relative(ROOT, file)}: '${spec}'`);
      });
    expect(wrong).toEqual([]);
  });

  it.each(Object.keys(ALLOWED))('src/%s imports only the layers below it', (layer) => {
    const allowed = ALLOWED[layer] as (to: string) => boolean;
    const wrong = edges()
      .filter((e) => e.from === layer && !allowed(e.to))
      .map((e) => `${e.where} (-> ${e.to})`);
    expect(wrong).toEqual([]);
  });
});
