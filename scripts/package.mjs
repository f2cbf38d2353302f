#!/usr/bin/env node
// `npm run package`: builds nsm-agent_<version>_amd64.deb and nsm-agent-<version>-1.x86_64.rpm
// into out/packages/ from the built tree (dist/, native/build, node_modules), with the build
// host's own Node binary so that the packages run on hosts without Node.
//
//   node scripts/package.mjs [--deb] [--rpm] [--version V] [--out DIR] [--fast] [--node PATH]
//
// --fast uses quick compression (tests); the layout and contents are the same.
// Needs: dpkg-deb, dpkg-shlibdeps (dpkg-dev), rpmbuild (rpm), strip (binutils), ldd, and icupkg and
// genrb (icu-devtools) for the runtime's English-only ICU data.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { checkEnglishRuntime, trimRuntimeIcu } from './runtime-icu.mjs';
import { reachedDistFiles, shipsModuleFile } from './package-prune.mjs';
import { minifyTree } from './package-minify.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PKG = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const APP = 'usr/lib/nsm-agent';

/** Libraries the runtime may link against: all in Debian's and Fedora's base system. */
const ALLOWED_LIBS = /^(linux-vdso\.so\.1|ld-linux-x86-64\.so\.2|libc\.so\.6|libm\.so\.6|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1|libstdc\+\+\.so\.6|libgcc_s\.so\.1)$/;

function parseArgs(argv) {
  const o = { deb: false, rpm: false, version: PKG.version, out: path.join(ROOT, 'out/packages'), fast: false, node: process.execPath };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--deb') o.deb = true;
    else if (a === '--rpm') o.rpm = true;
    else if (a === '--fast') o.fast = true;
    else if (a === '--version') o.version = argv[++i];
    else if (a === '--out') o.out = path.resolve(argv[++i]);
    else if (a === '--node') o.node = path.resolve(argv[++i]);
    else throw new Error(`unknown argument ${a}`);
  }
  if (!o.deb && !o.rpm) o.deb = o.rpm = true;
  if (!/^[0-9][A-Za-z0-9.+~]*$/.test(o.version)) throw new Error(`bad version ${o.version} (digits first; letters, digits, . + ~)`);
  return o;
}

const run = (cmd, args, opts = {}) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });

/** Checks with ldd that `file` needs only base-system libraries, all present. */
export function checkLinkage(file) {
  const out = run('ldd', [file]);
  const libs = [];
  for (const line of out.split('\n').map((l) => l.trim()).filter(Boolean)) {
    if (/not found/.test(line)) throw new Error(`${file}: ${line}`);
    if (/statically linked/.test(line)) continue;
    const name = path.basename(line.split(/\s+/)[0]);
    if (!ALLOWED_LIBS.test(name)) throw new Error(`${file} links ${name}, which hosts without Node may lack (allowed: libc, libm, libdl, libpthread, librt, libstdc++, libgcc_s)`);
    libs.push(name);
  }
  return libs;
}

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : [p];
  });
}

/** 'node_modules/a/node_modules/@s/b' -> '@s/b' */
const moduleName = (dir) => dir.split(path.sep).join('/').replace(/^.*node_modules\//, '');

function productionModules() {
  // npm ls exits non-zero on tree problems (e.g. an extraneous module) but still lists the tree.
  const r = spawnSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: ROOT, encoding: 'utf8', maxBuffer: 16 * 2 ** 20 });
  const out = r.stdout ?? '';
  if (!out.trim()) throw new Error(`npm ls gave no module list: ${r.stderr}`);
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && l !== ROOT && l.includes('node_modules'))
    .map((l) => path.relative(ROOT, l));
}

/**
 * The runtime both packages ship, made once in `work`: the build host's node, stripped (.dynsym
 * stays: addons bind N-API through it), with English-only ICU data (scripts/runtime-icu.mjs),
 * checked against the original.
 */
function prepareRuntime(o, work) {
  const node = path.join(work, 'node');
  copyFileSync(o.node, node);
  chmodSync(node, 0o755);
  run('strip', ['--strip-unneeded', node]);
  if (trimRuntimeIcu(node)) checkEnglishRuntime(o.node, node);
  return node;
}

/** The file tree both packages install, under `dest`; layout differs only in the unit dirs. */
function stage(dest, o, layout) {
  const app = path.join(dest, APP);
  mkdirSync(path.join(app, 'bin'), { recursive: true });
  const node = path.join(app, 'bin/node');
  copyFileSync(o.runtime, node);
  chmodSync(node, 0o755);

  // The application: the compiled JS its entry points reach (scripts/package-prune.mjs), the
  // data files beside it, the .proto files it loads at run time, the addon.
  const shipped = [...reachedDistFiles(ROOT), ...walk(path.join(ROOT, 'dist')).filter((f) => f.endsWith('.json'))];
  const ships = (s) => shipped.includes(s) || shipped.some((f) => f.startsWith(s + path.sep)); // no empty directories
  cpSync(path.join(ROOT, 'dist'), path.join(app, 'dist'), { recursive: true, filter: ships });
  cpSync(path.join(ROOT, 'proto'), path.join(app, 'proto'), { recursive: true });
  const addon = path.join(ROOT, 'native/build/Release/nsm_native.node');
  if (!existsSync(addon)) throw new Error('native/build/Release/nsm_native.node is missing: run npm ci (or npm run build:native)');
  mkdirSync(path.join(app, 'native/build/Release'), { recursive: true });
  copyFileSync(addon, path.join(app, 'native/build/Release/nsm_native.node'));
  const meta = { name: PKG.name, version: o.version, description: PKG.description, license: PKG.license, private: true, main: 'dist/agent/main.js', dependencies: PKG.dependencies };
  writeFileSync(path.join(app, 'package.json'), JSON.stringify(meta, null, 2) + '\n');

  // Production dependencies only, and of them only what Node loads (scripts/package-prune.mjs).
  for (const mod of productionModules()) {
    cpSync(path.join(ROOT, mod), path.join(app, mod), {
      recursive: true,
      filter: (s) => shipsModuleFile(moduleName(mod), path.relative(path.join(ROOT, mod), s).split(path.sep).join('/'), statSync(s).isDirectory()),
    });
  }
  // The JavaScript without comments and whitespace (scripts/package-minify.mjs).
  // the daemon's bundle is minified already, and its first line is how the loader knows it
  const { BUNDLE_MARK } = createRequire(import.meta.url)(path.join(ROOT, 'dist/agent/daemon-load.js'));
  minifyTree(path.join(app, 'dist'), (text) => text.startsWith(BUNDLE_MARK));
  minifyTree(path.join(app, 'node_modules'));
  // The daemon's V8 code cache is not shipped (it would not fit the size budget): the service
  // writes it into its CacheDirectory= after its first start. Checked here with the runtime the
  // package carries: a cache written in one start is used by the next (src/agent/daemon-load.ts).
  const cacheDir = mkdtempSync(path.join(os.tmpdir(), 'nsm-pkg-cache-'));
  try {
    const loader = JSON.stringify(path.join(app, 'dist/agent/daemon-load.js'));
    const start = `const l = require(${loader}); l.prepareV8(); const d = l.loadDaemon(); d.saveCache(); process.stdout.write(d.cache)`;
    const env = { ...process.env, CACHE_DIRECTORY: cacheDir };
    const uses = [run(node, ['-e', start], { env }), run(node, ['-e', start], { env })].map((u) => u.trim());
    if (uses.join(' ') !== 'none used') throw new Error(`the packaged daemon's code cache: ${uses.join(', then ')} (expected none, then used)`);
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
  // Every ELF file must run on a bare base system.
  const elves = walk(app).filter((f) => readFileSync(f).subarray(0, 4).toString('latin1') === '\x7fELF');
  for (const f of elves) {
    checkLinkage(f);
    if (f !== node) run('strip', ['--strip-unneeded', f]);
  }

  // Files around it.
  const put = (rel, text, mode = 0o644) => {
    const p = path.join(dest, rel);
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, text);
    chmodSync(p, mode);
  };
  const src = (rel) => readFileSync(path.join(ROOT, 'packaging', rel));
  put('usr/sbin/nsm-agent', `#!/bin/sh\n# nsm-agent ${o.version}: its own Node runtime, so the host needs none.\nexec /${APP}/bin/node /${APP}/dist/agent/main.js "$@"\n`, 0o755);
  put(`${layout.unitDir}/nsm-agent.service`, src('systemd/nsm-agent.service'));
  put(`${layout.unitDir}/nsm-connect@.service`, src('systemd/nsm-connect@.service'));
  put(`${layout.unitDir}/nsm-ondemand.socket`, src('systemd/nsm-ondemand.socket'));
  put(`${layout.unitDir}/nsm-ondemand@.service`, src('systemd/nsm-ondemand@.service'));
  put(`${layout.generatorDir}/nsm-agent-generator`, src('systemd/nsm-agent-generator'), 0o755);
  put('usr/lib/sysusers.d/nsm-agent.conf', src('systemd/nsm-agent.sysusers'));
  put('usr/lib/sysctl.d/60-nsm-agent.conf', src('sysctl/60-nsm-agent.conf'));
  put('usr/share/polkit-1/rules.d/60-nsm-agent.rules', src('polkit/60-nsm-agent.rules'));
  if (layout.preset) put('usr/lib/systemd/system-preset/80-nsm-agent.preset', src('systemd/nsm-agent.preset'));
  put('etc/nsm-agent/agent.yaml', src('agent.yaml'));
  put('usr/share/man/man8/nsm-agent.8.gz', gzipSync(src('nsm-agent.8'), { level: 9 }));
  put('usr/share/doc/nsm-agent/copyright', src('deb/copyright'));
  put('usr/share/doc/nsm-agent/README.md', readFileSync(path.join(ROOT, 'README.md')));

  // Modes: directories 0755, files 0644 unless executable on purpose.
  for (const f of walk(dest)) {
    const st = statSync(f);
    const exec = (st.mode & 0o111) !== 0 && (f.startsWith(path.join(dest, APP, 'bin')) || f.includes('/sbin/') || f.includes('generators'));
    chmodSync(f, exec ? 0o755 : 0o644);
  }
}

function changelogDate() {
  try {
    return run('git', ['log', '-1', '--format=%cD'], { cwd: ROOT }).trim();
  } catch {
    return new Date().toUTCString().replace('GMT', '+0000');
  }
}

function buildDeb(o, work) {
  const tree = path.join(work, 'deb');
  stage(tree, o, { unitDir: 'lib/systemd/system', generatorDir: 'lib/systemd/system-generators', preset: false });
  const changelog = `nsm-agent (${o.version}) unstable; urgency=medium\n\n  * Built from the nsm-agent repository by npm run package.\n\n -- nsm-agent developers <nsm-agent@lists.example.org>  ${changelogDate()}\n`;
  writeFileSync(path.join(tree, 'usr/share/doc/nsm-agent/changelog.gz'), gzipSync(changelog, { level: 9 }));
  mkdirSync(path.join(tree, 'usr/share/lintian/overrides'), { recursive: true });
  copyFileSync(path.join(ROOT, 'packaging/deb/lintian-overrides'), path.join(tree, 'usr/share/lintian/overrides/nsm-agent'));
  chmodSync(path.join(tree, 'usr/share/lintian/overrides/nsm-agent'), 0o644);
  chmodSync(path.join(tree, 'usr/share/doc/nsm-agent/changelog.gz'), 0o644);
  rmSync(path.join(tree, 'usr/share/doc/nsm-agent/README.md'));
  writeFileSync(path.join(tree, 'usr/share/doc/nsm-agent/README.md.gz'), gzipSync(readFileSync(path.join(ROOT, 'README.md')), { level: 9 }));
  chmodSync(path.join(tree, 'usr/share/doc/nsm-agent/README.md.gz'), 0o644);

  // Depends from the ELF files, as dh_shlibdeps would compute it.
  const shlib = path.join(work, 'shlibdeps');
  mkdirSync(path.join(shlib, 'debian'), { recursive: true });
  writeFileSync(path.join(shlib, 'debian/control'), 'Source: nsm-agent\n\nPackage: nsm-agent\nArchitecture: amd64\n');
  const elves = walk(tree).filter((f) => readFileSync(f).subarray(0, 4).toString('latin1') === '\x7fELF');
  const subst = run('dpkg-shlibdeps', ['-O', ...elves.map((e) => `-e${e}`)], { cwd: shlib });
  const depends = /shlibs:Depends=(.*)/.exec(subst)?.[1]?.trim();
  if (!depends) throw new Error(`dpkg-shlibdeps gave no Depends: ${subst}`);

  const deb = path.join(tree, 'DEBIAN');
  mkdirSync(deb);
  const size = Number(run('du', ['-sk', '--apparent-size', tree]).split(/\s/)[0]);
  const control = readFileSync(path.join(ROOT, 'packaging/deb/control'), 'utf8')
    .replace('@VERSION@', o.version)
    .replace('@INSTALLED_SIZE@', String(size))
    .replace('@SHLIBS_DEPENDS@', depends);
  writeFileSync(path.join(deb, 'control'), control);
  for (const f of ['conffiles', 'postinst', 'prerm', 'postrm']) {
    copyFileSync(path.join(ROOT, 'packaging/deb', f), path.join(deb, f));
    chmodSync(path.join(deb, f), f === 'conffiles' ? 0o644 : 0o755);
  }
  const sums = walk(tree)
    .filter((f) => !f.startsWith(deb + path.sep) && !f.startsWith(path.join(tree, 'etc') + path.sep))
    .map((f) => `${createHash('md5').update(readFileSync(f)).digest('hex')}  ${path.relative(tree, f)}`);
  writeFileSync(path.join(deb, 'md5sums'), sums.join('\n') + '\n');
  chmodSync(path.join(deb, 'md5sums'), 0o644);

  const file = path.join(o.out, `nsm-agent_${o.version}_amd64.deb`);
  // xz -9 with its extreme strategy: the smallest deb dpkg-deb makes (it needs ~700 MiB of memory
  // per compressing thread; unpacking needs 65 MiB).
  const z = o.fast ? ['-Zgzip', '-z1'] : ['-Zxz', '-z9', '-Sextreme'];
  run('dpkg-deb', ['--root-owner-group', ...z, '--build', tree, file], { env: { ...process.env, SOURCE_DATE_EPOCH: dateEpoch() } });
  return file;
}

function dateEpoch() {
  try {
    return run('git', ['log', '-1', '--format=%ct'], { cwd: ROOT }).trim();
  } catch {
    return String(Math.floor(Date.now() / 1000));
  }
}

function buildRpm(o, work) {
  const tree = path.join(work, 'rpm');
  stage(tree, o, { unitDir: 'usr/lib/systemd/system', generatorDir: 'usr/lib/systemd/system-generators', preset: true });
  const top = path.join(work, 'rpmbuild');
  for (const d of ['SPECS', 'RPMS', 'BUILD', 'BUILDROOT', 'SOURCES', 'SRPMS']) mkdirSync(path.join(top, d), { recursive: true });
  const rpmVersion = o.version.replace(/-/g, '_');
  const r = spawnSync(
    'rpmbuild',
    [
      '--define', `_topdir ${top}`,
      '--define', `pkgversion ${rpmVersion}`,
      '--define', `stagedir ${tree}`,
      '--define', `payload ${o.fast ? 'w1.gzdio' : 'w9T.xzdio'}`,
      '--define', '_build_id_links none',
      '-bb', path.join(ROOT, 'packaging/rpm/nsm-agent.spec'),
    ],
    { encoding: 'utf8', env: { ...process.env, SOURCE_DATE_EPOCH: dateEpoch() } },
  );
  if (r.status !== 0) throw new Error(`rpmbuild failed:\n${r.stdout}\n${r.stderr}`);
  const built = path.join(top, 'RPMS/x86_64', `nsm-agent-${rpmVersion}-1.x86_64.rpm`);
  const file = path.join(o.out, path.basename(built));
  copyFileSync(built, file);
  return file;
}

export function main(argv) {
  const o = parseArgs(argv);
  if (!existsSync(path.join(ROOT, 'dist/agent/main.js'))) throw new Error('dist/ is missing: run npm run build');
  mkdirSync(o.out, { recursive: true });
  const work = mkdtempSync(path.join(os.tmpdir(), 'nsm-package-'));
  const made = [];
  try {
    o.runtime = prepareRuntime(o, work);
    if (o.deb) made.push(buildDeb(o, work));
    if (o.rpm) made.push(buildRpm(o, work));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  for (const f of made) console.log(`${f}  ${(statSync(f).size / 2 ** 20).toFixed(1)} MiB`);
  return made;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    main(process.argv.slice(2));
  } catch (err) {
    console.error(`package: ${err.message}`);
    process.exitCode = 1;
  }
}
