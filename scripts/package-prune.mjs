// Which files of a production dependency the packages ship: what Node can load at run time, and
// the license texts. Tests, examples, benchmarks, documentation, TypeScript sources and
// declarations, source maps and the C/C++ inputs of addon builds stay out.
// test/unit/package-prune.test.ts checks that nothing the application can reach is left out.

/** Directory names that hold a package's tests, examples or benchmarks, at any depth in it. */
const NOT_RUNTIME_DIRS = new Set(['test', 'tests', '__tests__', 'spec', 'example', 'examples', 'bench', 'benchmark', 'benchmarks', 'coverage']);

/** File names never loaded by Node. */
const NOT_RUNTIME_FILES = [
  /\.(map|ts|mts|cts)$/, // source maps, TypeScript sources and declarations (.d.ts)
  /\.(md|markdown|html|htm)$/i, // documentation
  /^(readme|changelog|changes|history|authors|contributors|contributing)(\.|$)/i,
  /\.(h|hh|hpp|c|cc|cpp|gyp|gypi)$/, // sources and build files of native addons (built already)
  /^(Makefile|binding\.gyp|tsconfig(\..*)?\.json)$/,
];

/** Files that a dependency's published tarball holds by mistake and nothing requires. */
const NOT_RUNTIME_PATHS = new Set([
  'xml2js/lib/xml2js.bc.js', // a js_of_ocaml build shipped in xml2js 0.6.x; lib/xml2js.js never loads it
]);

const LICENSE = /^(licen[cs]e|copying|notice)/i;

/**
 * True when the file or directory at `rel` (relative to the module's own directory, with '/'
 * separators) of the module `mod` (e.g. 'xml2js', '@grpc/grpc-js') goes into the package.
 */
export function shipsModuleFile(mod, rel, isDirectory) {
  if (rel === '') return true;
  const parts = rel.split('/');
  const name = parts[parts.length - 1];
  if (parts[0] === 'node_modules') return false; // nested modules are staged on their own
  if (/(^|\/)prebuilds\/(?!linux-x64)[^/]+/.test(rel)) return false; // other platforms' addons
  if (name.startsWith('.')) return false; // .npmignore, .eslintrc.yml, .github ...
  if (parts.some((p, i) => (i < parts.length - 1 || isDirectory) && NOT_RUNTIME_DIRS.has(p))) return false;
  if (isDirectory) return true;
  if (LICENSE.test(name)) return true;
  if (NOT_RUNTIME_PATHS.has(`${mod}/${rel}`)) return false;
  return !NOT_RUNTIME_FILES.some((re) => re.test(name));
}
