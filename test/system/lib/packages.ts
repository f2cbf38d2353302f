/**
 * The packages under test: built once per run by scripts/package.mjs (what `npm run package`
 * runs), with quick compression, from the already built dist/ (npm test builds first).
 * With NSM_PKG_DIR set, the packages found there are used instead (bench/packages.mjs passes
 * its release-compressed build).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '../../..');
export const VERSION: string = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version;
/** The rebuilt package with a higher version, for the upgrade case. */
export const VERSION2 = `${VERSION}+systest1`;

export interface Packages {
  dir: string;
  /** True when the directory was made here (and must be removed). */
  own: boolean;
  deb: string;
  deb2: string;
  rpm: string;
}

function build(args: string[]): void {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts/package.mjs'), ...args], { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`scripts/package.mjs ${args.join(' ')} failed: ${r.stderr}${r.stdout}`);
}

export function packages(): Packages {
  const given = process.env['NSM_PKG_DIR'];
  const dir = given ?? mkdtempSync(path.join(os.tmpdir(), 'nsm-package-out-'));
  const p: Packages = {
    dir,
    own: !given,
    deb: path.join(dir, `nsm-agent_${VERSION}_amd64.deb`),
    deb2: path.join(dir, `nsm-agent_${VERSION2}_amd64.deb`),
    rpm: path.join(dir, `nsm-agent-${VERSION}-1.x86_64.rpm`),
  };
  if (!existsSync(path.join(ROOT, 'dist/agent/main.js'))) throw new Error('dist/ is missing: run npm run build first (npm test does)');
  if (!existsSync(p.deb) || !existsSync(p.rpm)) build(['--fast', '--out', dir]);
  if (!existsSync(p.deb2)) build(['--fast', '--deb', '--version', VERSION2, '--out', dir]);
  return p;
}
