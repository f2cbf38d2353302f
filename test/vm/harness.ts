/**
 * Debian 12 virtual machines under qemu (TCG: these hosts have no usable KVM) for the VM system
 * test and its benchmark:
 *
 * - {@link vmImage}: base.img + vmlinuz + initrd.img made by build-image.sh with debootstrap,
 *   cached under /var/cache/nsm-agent-test/vm/<hash of build-image.sh>/ and built when missing.
 * - {@link VmNet}: a private network namespace (nsmt-vm-<pid>-net) with one bridge; every VM has
 *   a tap on it and 10.77.0.N/24 on its ens3. Nothing leaves the namespace.
 * - {@link Vm}: one qemu process (a throw-away qcow2 overlay on the base image), its guest agent
 *   for commands, hot-plugged read-only "payload" disks for files, kill by PID. Without
 *   -no-reboot: a reboot inside the guest boots the same VM again.
 *
 * Run state (overlays, sockets, console logs) lives in a directory made under os.tmpdir()
 * (nsmt-vm-*), removed by {@link VmNet.destroy}.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GuestAgent, qmp, type ExecResult } from './qga';

export const VM_CACHE = '/var/cache/nsm-agent-test/vm';
const BUILDER = path.join(__dirname, 'build-image.sh');
const ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' };

export interface VmImage {
  dir: string;
  base: string;
  kernel: string;
  initrd: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function run(cmd: string, args: string[], timeout = 60_000): ExecResult {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout, env: ENV });
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
}

function must(cmd: string, args: string[], timeout = 60_000): string {
  const r = run(cmd, args, timeout);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** Host tools the VM test needs; the missing ones. */
export function missingVmTools(): string[] {
  return ['qemu-system-x86_64', 'qemu-img', 'debootstrap', 'mkfs.ext4', 'tar', 'ip', 'dpkg-deb', 'dpkg-shlibdeps', 'strip'].filter(
    (t) => run('sh', ['-c', `command -v ${t}`]).code !== 0,
  );
}

/** The Debian mirror this machine's apt uses (the only one reachable). */
function debianMirror(): string {
  for (const f of ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list']) {
    if (!existsSync(f)) continue;
    const text = readFileSync(f, 'utf8');
    const m = /^URIs:\s*(\S+)\s*\nSuites:\s*bookworm\b/m.exec(text) ?? /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/m.exec(text);
    if (m) return m[1]!;
  }
  return 'http://deb.debian.org/debian';
}

/** The cached image; built (2-3 minutes, needs the Debian mirror) when missing. */
export async function vmImage(log: (m: string) => void = () => {}): Promise<VmImage> {
  const key = createHash('sha256').update(readFileSync(BUILDER)).digest('hex').slice(0, 12);
  const dir = path.join(VM_CACHE, key);
  const img: VmImage = { dir, base: path.join(dir, 'base.img'), kernel: path.join(dir, 'vmlinuz'), initrd: path.join(dir, 'initrd.img') };
  if (existsSync(img.base) && existsSync(img.kernel) && existsSync(img.initrd)) return img;
  mkdirSync(VM_CACHE, { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  log(`building the VM image into ${dir} (debootstrap; cached for later runs)`);
  const logFile = `${tmp}.log`;
  const out = openSync(logFile, 'w');
  try {
    const p = spawn('bash', [BUILDER, tmp, debianMirror()], { stdio: ['ignore', out, out], env: ENV });
    const code = await new Promise<number | null>((resolve) => p.once('exit', (c) => resolve(c)));
    if (code !== 0) throw new Error(`build-image.sh failed (${code}):\n${readFileSync(logFile, 'utf8').slice(-3000)}`);
    renameSync(tmp, dir);
  } finally {
    closeSync(out);
    rmSync(tmp, { recursive: true, force: true });
    rmSync(logFile, { force: true });
  }
  return img;
}

/** The VMs' network: a namespace with a bridge (host side 10.77.0.254), and the run directory. */
export class VmNet {
  readonly vms: Vm[] = [];

  private constructor(
    readonly ns: string,
    readonly runDir: string,
  ) {}

  static create(tag = 'vm'): VmNet {
    const ns = `nsmt-${tag}-${process.pid}-net`;
    mkdirSync(os.tmpdir(), { recursive: true });
    const runDir = mkdtempSync(path.join(os.tmpdir(), 'nsmt-vm-'));
    run('ip', ['netns', 'del', ns]); // a leftover of an aborted run with the same pid
    try {
      must('ip', ['netns', 'add', ns]);
      must('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      must('ip', ['-n', ns, 'link', 'add', 'br0', 'type', 'bridge']);
      must('ip', ['-n', ns, 'addr', 'add', '10.77.0.254/24', 'dev', 'br0']);
      must('ip', ['-n', ns, 'link', 'set', 'br0', 'up']);
    } catch (err) {
      run('ip', ['netns', 'del', ns]);
      rmSync(runDir, { recursive: true, force: true });
      throw err;
    }
    return new VmNet(ns, runDir);
  }

  /** Kills every VM (by PID), deletes the namespace and the run directory. */
  async destroy(): Promise<void> {
    await Promise.all(this.vms.map((v) => v.kill()));
    run('ip', ['netns', 'del', this.ns]);
    rmSync(this.runDir, { recursive: true, force: true });
  }
}

export interface VmOptions {
  memMiB?: number;
}

export class Vm {
  readonly name: string;
  readonly ip: string;
  readonly ga: GuestAgent;
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  /** Host time (ms) when qemu was started. */
  startedAt = 0;

  constructor(
    readonly net: VmNet,
    readonly n: number,
    readonly image: VmImage,
    readonly opts: VmOptions = {},
  ) {
    this.name = `vm${n}`;
    this.ip = `10.77.0.${n}`;
    this.ga = new GuestAgent(this.file('qga'));
    net.vms.push(this);
  }

  file(ext: string): string {
    return path.join(this.net.runDir, `${this.name}.${ext}`);
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get tap(): string {
    return `vmt${this.n}`;
  }

  /** Starts qemu (returns at once; see {@link waitBooted}). */
  start(): void {
    const overlay = this.file('qcow2');
    rmSync(overlay, { force: true });
    must('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', this.image.base, '-F', 'raw', overlay]);
    const ns = this.net.ns;
    run('ip', ['-n', ns, 'link', 'del', this.tap]);
    must('ip', ['-n', ns, 'tuntap', 'add', 'dev', this.tap, 'mode', 'tap']);
    must('ip', ['-n', ns, 'link', 'set', this.tap, 'master', 'br0', 'up']);
    const machineId = (0x7e570000 + this.n).toString(16).padStart(32, '0');
    const append = [
      'root=LABEL=vmroot rw console=ttyS0 quiet',
      // No IDE, floppy or KVM drivers to probe: a faster boot under emulation.
      'modprobe.blacklist=ata_piix,ata_generic,pata_acpi,floppy,kvm,kvm_amd,kvm_intel',
      // A machine-id of its own: MAC addresses of vxlan/veth links derive from it.
      `systemd.hostname=${this.name} systemd.machine_id=${machineId} nsmvm.ip=${this.ip}/24`,
    ].join(' ');
    const mac = `52:54:00:77:00:${this.n.toString(16).padStart(2, '0')}`;
    const args = [
      'netns', 'exec', ns, 'qemu-system-x86_64',
      '-accel', 'tcg', '-m', String(this.opts.memMiB ?? 1024), '-smp', '1',
      '-nodefaults', '-vga', 'none', '-display', 'none', '-monitor', 'none',
      '-kernel', this.image.kernel, '-initrd', this.image.initrd, '-append', append,
      // Fixed PCI slots: the NIC is ens3 in the guest, the root disk is found by label.
      '-drive', `file=${overlay},if=none,id=root,format=qcow2,cache=unsafe`,
      '-device', 'virtio-blk-pci,drive=root,serial=root,addr=0x4',
      '-netdev', `tap,id=n0,ifname=${this.tap},script=no,downscript=no`,
      '-device', `virtio-net-pci,netdev=n0,mac=${mac},addr=0x3`,
      '-device', 'virtio-rng-pci,addr=0x5',
      '-device', 'virtio-serial-pci,addr=0x6',
      '-chardev', `socket,id=qga0,path=${this.file('qga')},server=on,wait=off`,
      '-device', 'virtserialport,chardev=qga0,name=org.qemu.guest_agent.0',
      '-qmp', `unix:${this.file('qmp')},server=on,wait=off`,
      '-serial', `file:${this.file('console')}`,
    ];
    const out = openSync(this.file('qemu.log'), 'w');
    try {
      // `ip netns exec` execs qemu: the PID is qemu's.
      this.proc = spawn('ip', args, { stdio: ['ignore', out, out], env: ENV });
    } finally {
      closeSync(out);
    }
    const p = this.proc;
    this.exited = new Promise((resolve) => p.once('exit', () => resolve()));
    this.startedAt = Date.now();
  }

  alive(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** The end of the console log and of qemu's own output, for error messages. */
  tail(chars = 2000): string {
    const read = (f: string): string => (existsSync(f) ? readFileSync(f, 'utf8') : '');
    return `${this.name} console:\n${read(this.file('console')).slice(-chars)}\n${this.name} qemu:\n${read(this.file('qemu.log')).slice(-500)}`;
  }

  /** Waits until the guest agent answers and systemd has finished booting; returns systemd's state. */
  async waitBooted(timeoutMs = 300_000): Promise<string> {
    const end = Date.now() + timeoutMs;
    while (!(await this.ga.ping())) {
      if (!this.alive()) throw new Error(`${this.name}: qemu exited\n${this.tail()}`);
      if (Date.now() > end) throw new Error(`${this.name}: no guest agent after ${timeoutMs} ms\n${this.tail()}`);
      await sleep(500);
    }
    const r = await this.ga.exec(['systemctl', 'is-system-running', '--wait'], Math.max(5_000, end - Date.now()));
    return r.stdout.trim();
  }

  /** The boot's id (changes with every boot). */
  async bootId(): Promise<string> {
    return (await this.must('cat /proc/sys/kernel/random/boot_id')).trim();
  }

  /** `sh -c script` in the guest. */
  sh(script: string, timeoutMs = 120_000): Promise<ExecResult> {
    return this.ga.exec(['/bin/sh', '-c', script], timeoutMs);
  }

  /** `sh -c script` in the guest; throws with its output unless it exits 0. */
  async must(script: string, timeoutMs = 120_000): Promise<string> {
    const r = await this.sh(script, timeoutMs);
    if (r.code !== 0) throw new Error(`${this.name}: ${script}\nexit ${r.code}\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  }

  /** Attaches `file` read-only as /dev/disk/by-id/virtio-<id> in the guest. */
  async hotplug(file: string, id: string): Promise<void> {
    await qmp(this.file('qmp'), [
      { execute: 'blockdev-add', arguments: { 'node-name': id, driver: 'raw', 'read-only': true, file: { driver: 'file', filename: file, 'read-only': true } } },
      { execute: 'device_add', arguments: { driver: 'virtio-blk-pci', drive: id, id: `dev-${id}`, serial: id } },
    ]);
    await this.must(`for i in $(seq 1 80); do [ -e /dev/disk/by-id/virtio-${id} ] && exit 0; sleep 0.25; done; exit 1`, 30_000);
  }

  /** Saves the guest's journal, network state and the console log into `dir` (best effort). */
  async collectLogs(dir: string): Promise<void> {
    mkdirSync(dir, { recursive: true });
    if (existsSync(this.file('console'))) copyFileSync(this.file('console'), path.join(dir, `${this.name}.console`));
    if (!this.alive() || !(await this.ga.ping())) return;
    const save = async (what: string, script: string): Promise<void> => {
      const r = await this.sh(script, 30_000).catch((e: Error) => ({ code: -1, stdout: '', stderr: e.message }));
      writeFileSync(path.join(dir, `${this.name}.${what}`), r.stdout + r.stderr);
    };
    await save('journal', 'journalctl -b --no-pager -o short-monotonic');
    await save(
      'net',
      'for n in "" $(ip netns list | cut -d" " -f1); do echo "== netns ${n:-host}"; ' +
        'ip ${n:+-n $n} -d addr; ip ${n:+-n $n} route; ${n:+ip netns exec $n} wg show all dump; done; ps -ef',
    );
  }

  /** Kills qemu by PID (SIGTERM, SIGKILL after 10 s), then removes its tap. */
  async kill(): Promise<void> {
    const p = this.proc;
    if (p && this.alive()) {
      p.kill('SIGTERM');
      const killed = await Promise.race([this.exited.then(() => true), sleep(10_000).then(() => false)]);
      if (!killed) {
        p.kill('SIGKILL');
        await this.exited;
      }
    }
    run('ip', ['-n', this.net.ns, 'link', 'del', this.tap]);
  }
}

/** A tar of `files` (name in the tar -> host path or contents) for a payload disk. */
export function payloadTar(dir: string, files: Record<string, { path: string } | { text: string; mode?: number }>): string {
  const root = path.join(dir, 'payload');
  rmSync(root, { recursive: true, force: true });
  for (const [name, src] of Object.entries(files)) {
    const dest = path.join(root, name);
    mkdirSync(path.dirname(dest), { recursive: true });
    if ('path' in src) copyFileSync(src.path, dest);
    else writeFileSync(dest, src.text, { mode: src.mode ?? 0o644 });
  }
  const tar = path.join(dir, 'payload.tar');
  must('tar', ['cf', tar, '-C', root, '.']);
  rmSync(root, { recursive: true, force: true });
  return tar;
}
