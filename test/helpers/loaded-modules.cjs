// Preloaded into an agent by a test (node --require): appends the resolved name of every module
// the process loads, the first time it is loaded, to the file $NSMT_LOADED_MODULES, one a line
// (builtins by their name without `node:`, e.g. `http2`).
const Module = require('node:module');
const { appendFileSync } = require('node:fs');

const file = process.env.NSMT_LOADED_MODULES;
const seen = new Set();
const load = Module._load;
Module._load = function (request, parent, isMain) {
  const exports = load.apply(this, arguments);
  let name;
  try {
    name = Module._resolveFilename(request, parent, isMain);
  } catch {
    name = request;
  }
  if (name.startsWith('node:')) name = name.slice('node:'.length);
  if (file && !seen.has(name)) {
    seen.add(name);
    appendFileSync(file, name + '\n');
  }
  return exports;
};
