// The packages' JavaScript, made smaller without changing what runs: esbuild removes whitespace
// and comments and simplifies syntax file by file. Identifiers are not renamed, so function and
// class names (stack traces, error names) stay; licence comments (/*! ... */, @license) stay.
// Line numbers in stack traces of the packaged agent are those of the minified files.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { transformSync } from 'esbuild';

/**
 * Every .js and .cjs file below `dir`, rewritten in place, but those whose text `keep` says to
 * leave (a file minified already, whose first line matters); returns bytes before and after.
 */
export function minifyTree(dir, keep = () => false) {
  let before = 0;
  let after = 0;
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && /\.c?js$/.test(e.name)) {
        const src = readFileSync(p, 'utf8');
        if (keep(src)) continue;
        let code;
        try {
          // no format: a CommonJS file stays CommonJS, nothing is wrapped or hoisted
          code = transformSync(src, { loader: 'js', target: 'node20', minifyWhitespace: true, minifySyntax: true, legalComments: 'inline' }).code;
        } catch (err) {
          throw new Error(`cannot minify ${p}: ${err.message}`);
        }
        writeFileSync(p, code);
        before += src.length;
        after += code.length;
      }
    }
  };
  walk(dir);
  return { before, after };
}
