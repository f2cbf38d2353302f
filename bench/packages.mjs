// Package sizes and the agent's idle RSS under systemd, into BENCHMARKS.md.
//
//   npm run build && node bench/packages.mjs
//
// Builds the release packages (scripts/package.mjs, xz), then runs the system test
// (test/system/host-citizen.test.ts) on them: it installs the deb into a Debian 12 root booted
// with systemd-nspawn and reads VmRSS of the agent's MainPID after 5 s idle. Needs root and what
// .ci/run installs (debootstrap, systemd-container, rpm, lintian, dpkg-dev).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from '../test/harness/exec.mjs';
import { machine, table, writeSection } from './lib.mjs';

const version = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version;
const dir = mkdtempSync(path.join(os.tmpdir(), 'nsm-package-bench-'));
const figuresFile = path.join(dir, 'figures.json');
try {
  const t0 = Date.now();
  const b = spawnSync(process.execPath, [path.join(ROOT, 'scripts/package.mjs'), '--out', dir], { stdio: 'inherit' });
  if (b.status !== 0) throw new Error('scripts/package.mjs failed');
  const buildS = (Date.now() - t0) / 1000;
  const deb = path.join(dir, `nsm-agent_${version}_amd64.deb`);
  const rpm = path.join(dir, `nsm-agent-${version}-1.x86_64.rpm`);

  const t1 = Date.now();
  const t = spawnSync('npx', ['vitest', 'run', 'test/system/host-citizen.test.ts'], {
    cwd: ROOT,
    stdio: 'inherit',
    env: { ...process.env, NSM_PKG_DIR: dir, NSM_BENCH_OUT: figuresFile },
  });
  if (t.status !== 0) throw new Error('the system test failed');
  const testS = (Date.now() - t1) / 1000;
  const f = JSON.parse(readFileSync(figuresFile, 'utf8'));

  const mib = (bytes) => (bytes / 2 ** 20).toFixed(1);
  const rows = [
    ['nsm-agent_<v>_amd64.deb (xz -9, extreme)', `${mib(statSync(deb).size)} MiB`],
    ['nsm-agent-<v>-1.x86_64.rpm (xz -9)', `${mib(statSync(rpm).size)} MiB`],
    ['installed size (dpkg Installed-Size)', `${(f.installedKiB / 1024).toFixed(1)} MiB`],
    ['  of which the Node runtime (stripped)', `${mib(nodeSize(deb))} MiB`],
    ['idle RSS of nsm-agent.service (VmRSS, 5 s after start)', `${(f.idleRssKiB / 1024).toFixed(1)} MiB`],
    ['dpkg -i inside the container', `${(f.dpkgInstallMs / 1000).toFixed(1)} s`],
    ['container boot to running', `${(f.bootMs / 1000).toFixed(2)} s`],
  ];
  const out = table(['what', 'value'], rows);
  console.log(out);
  writeSection(
    'host-citizen',
    `## Packages and idle memory under systemd

Command: \`npm run build && node bench/packages.mjs\` (release compression; the system test
\`test/system/host-citizen.test.ts\` then installs the deb into a Debian 12 root without nodejs,
booted with systemd-nspawn, and reads the agent's VmRSS with no endpoints and no connections).
Machine: ${machine()}.

${out}

Release build of both packages: ${buildS.toFixed(0)} s; the system test on them: ${testS.toFixed(0)} s.
The packages carry the build host's Node ${process.version} (stripped, its ICU data cut to English), which is most of their size.`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}

function nodeSize(deb) {
  const r = spawnSync('dpkg-deb', ['-c', deb], { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  const line = r.stdout.split('\n').find((l) => l.endsWith('./usr/lib/nsm-agent/bin/node'));
  return Number(line?.trim().split(/\s+/)[2] ?? 0);
}
