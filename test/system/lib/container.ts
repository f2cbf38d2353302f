/**
 * A booted Debian 12 with a real systemd, for the system test:
 *
 * - rootfs(): a minimal bookworm made by debootstrap once and cached under
 *   /var/cache/nsm-agent-test/ (its name carries a hash of what it includes, so a change of the
 *   list makes a new one); never modified afterwards.
 * - Container.boot(): an overlay (the cached root below, a fresh upper dir) booted with
 *   `systemd-nspawn -b --register=no --keep-unit --private-network` (the flags that work without
 *   systemd as the host's PID 1); commands run through `nsenter -t <container PID 1> -a`.
 * - stop(): `systemctl poweroff`, then by PID if needed; the overlay is unmounted and every
 *   directory made here removed.
 */
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const CACHE_DIR = '/var/cache/nsm-agent-test';
/**
 * What the root has besides minbase: systemd as init, D-Bus, ip and ping for the checks,
 * systemd-resolved (host DNS of `netns: host` connections) with polkitd (resolved asks it
 * about callers other than root; libpam-systemd is the logind it depends on) and dnsmasq's
 * binary (an endpoint's DNS server; dnsmasq-base has no service that would start at boot).
 */
export const INCLUDE = ['systemd', 'systemd-sysv', 'dbus', 'iproute2', 'iputils-ping', 'systemd-resolved', 'dnsmasq-base', 'polkitd', 'libpam-systemd'];
const SUITE = 'bookworm';

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], opts: { timeout?: number; input?: string } = {}): Result {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: opts.timeout ?? 120_000, input: opts.input, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' } });
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
}

function must(cmd: string, args: string[], opts: { timeout?: number } = {}): string {
  const r = run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** The Debian mirror apt uses on this machine (the only one reachable). */
export function debianMirror(): string {
  const files = ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list'];
  for (const f of files) {
    if (!existsSync(f)) continue;
    const text = readFileSync(f, 'utf8');
    const deb822 = /^URIs:\s*(\S+)\s*\nSuites:\s*bookworm\b/m.exec(text);
    if (deb822) return deb822[1]!;
    const line = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/m.exec(text);
    if (line) return line[1]!;
  }
  return 'http://deb.debian.org/debian';
}

/** The cached root; made (about 35 s) if missing. */
export function rootfs(log: (msg: string) => void = () => {}): string {
  const key = createHash('sha256').update(`${SUITE} minbase ${INCLUDE.join(',')}`).digest('hex').slice(0, 12);
  const dir = path.join(CACHE_DIR, `${SUITE}-${key}`);
  if (existsSync(path.join(dir, 'usr/lib/systemd/systemd'))) return dir;
  mkdirSync(CACHE_DIR, { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  log(`debootstrap ${SUITE} into ${dir} (cached for later runs)`);
  try {
    must('debootstrap', ['--variant=minbase', `--include=${INCLUDE.join(',')}`, SUITE, tmp, debianMirror()], { timeout: 600_000 });
    // Trimmed for size: apt lists and downloaded archives are not needed to boot.
    rmSync(path.join(tmp, 'var/cache/apt/archives'), { recursive: true, force: true });
    mkdirSync(path.join(tmp, 'var/cache/apt/archives/partial'), { recursive: true });
    renameSync(tmp, dir);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return dir;
}

export class Container {
  private constructor(
    readonly name: string,
    readonly dir: string,
    /** The merged root, as the host sees it. */
    readonly root: string,
    private readonly nspawn: ChildProcess,
    readonly pid1: number,
    private readonly output: string[],
  ) {}

  static async boot(lower: string, opts: { timeoutMs?: number } = {}): Promise<Container> {
    const { dir, root, name } = mountOverlay(lower);
    const output: string[] = [];
    const nspawn = spawn('systemd-nspawn', ['-D', root, '-b', '--register=no', '--keep-unit', '--private-network', '-M', name, '--console=passive'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' },
    });
    nspawn.stdout!.on('data', (d) => output.push(String(d)));
    nspawn.stderr!.on('data', (d) => output.push(String(d)));
    const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
    let pid1 = 0;
    const fail = async (why: string): Promise<never> => {
      if (nspawn.exitCode === null) nspawn.kill('SIGKILL');
      if (pid1) run('kill', ['-KILL', String(pid1)]);
      await new Promise((r) => setTimeout(r, 200));
      cleanupDirs(name, dir, root);
      throw new Error(`container did not boot: ${why}\n${output.join('').slice(-3000)}`);
    };
    while (!pid1) {
      if (nspawn.exitCode !== null) return fail(`systemd-nspawn exited with ${nspawn.exitCode}`);
      if (Date.now() > deadline) return fail('no PID 1');
      // nspawn forks helpers before the container's init: take the child that is PID 1 in its
      // own PID namespace (NSpid ends in 1), not a transient one.
      const kids = run('pgrep', ['-P', String(nspawn.pid)]).stdout.trim().split('\n').filter(Boolean).map(Number);
      pid1 = kids.find(isNamespaceInit) ?? 0;
      if (!pid1) await new Promise((r) => setTimeout(r, 50));
    }
    const c = new Container(name, dir, root, nspawn, pid1, output);
    for (;;) {
      const r = c.exec(['systemctl', 'is-system-running']);
      const state = r.stdout.trim();
      if (state === 'running' || state === 'degraded') break;
      if (Date.now() > deadline) return fail(`is-system-running: ${state} ${r.stderr.trim()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return c;
  }

  /** Runs a command inside the container (all its namespaces), with a clean environment. */
  exec(args: string[], opts: { timeout?: number; input?: string } = {}): Result {
    return run('nsenter', ['-t', String(this.pid1), '-a', 'env', '-i', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'LANG=C', 'SYSTEMD_PAGER=', 'SYSTEMD_COLORS=0', ...args], opts);
  }

  /** `sh -c script` inside; throws with the output unless it exits 0. */
  sh(script: string, opts: { timeout?: number; input?: string } = {}): string {
    const r = this.exec(['sh', '-c', script], opts);
    if (r.code !== 0) throw new Error(`in container: ${script}\nexit ${r.code}\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  }

  /** Exit code of a shell script inside (no throw). */
  test(script: string): number {
    return this.exec(['sh', '-c', script]).code;
  }

  /** Host path of a file inside the container. */
  path(p: string): string {
    return path.join(this.root, p);
  }

  async stop(): Promise<void> {
    const exited = new Promise<void>((resolve) => {
      if (this.nspawn.exitCode !== null || this.nspawn.signalCode !== null) resolve();
      else this.nspawn.once('exit', () => resolve());
    });
    this.exec(['systemctl', 'poweroff', '--no-block'], { timeout: 10_000 });
    const timedOut = await Promise.race([exited.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), 15_000))]);
    if (timedOut) {
      run('kill', ['-KILL', String(this.pid1)]);
      this.nspawn.kill('SIGKILL');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
    }
    cleanupDirs(this.name, this.dir, this.root);
  }

  log(): string {
    return this.output.join('');
  }
}

/** A writable copy of `lower` (an overlay with a fresh upper dir); cleanup() removes it. */
export function mountOverlay(lower: string): { dir: string; root: string; name: string; cleanup(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nsmt-ct-'));
  const name = `nsmt-${path.basename(dir).slice(-6).toLowerCase().replace(/[^a-z0-9]/g, 'x')}`;
  const root = path.join(dir, 'root');
  for (const d of ['upper', 'work', 'root']) mkdirSync(path.join(dir, d));
  try {
    must('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${dir}/upper,workdir=${dir}/work`, root]);
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return { dir, root, name, cleanup: () => cleanupDirs(name, dir, root) };
}

function isNamespaceInit(pid: number): boolean {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('NSpid:'));
    const ids = line?.split(/\s+/).slice(1).filter(Boolean) ?? [];
    return ids.length > 1 && ids[ids.length - 1] === '1';
  } catch {
    return false;
  }
}

function cleanupDirs(name: string, dir: string, root: string): void {
  for (let i = 0; i < 20; i++) {
    const mounted = readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === root);
    if (!mounted) break;
    // Lazy as a last resort: the container's mounts below it may still be going away.
    run('umount', i < 10 ? [root] : ['-l', root]);
  }
  rmSync(dir, { recursive: true, force: true });
  // nspawn leaves its propagation directory (the host's /run is no tmpfs here).
  rmSync(`/run/systemd/nspawn/propagate/${name}`, { recursive: true, force: true });
}

/** Tools the system test needs on the host; the missing ones. */
export function missingTools(): string[] {
  return ['debootstrap', 'systemd-nspawn', 'nsenter', 'dpkg-deb', 'dpkg-shlibdeps', 'rpmbuild', 'rpm', 'lintian', 'strip'].filter(
    (t) => run('sh', ['-c', `command -v ${t}`]).code !== 0,
  );
}
