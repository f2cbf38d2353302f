/**
 * Global setup: records what exists before the suite and fails the run if the suite leaves
 * network namespaces, wireguard-go processes or agent processes behind (and, for test/system,
 * systemd-nspawn containers with their overlay mounts and package build directories; for
 * test/vm, qemu processes and their run directories).
 * The one host setting agents change on purpose (they reserve their WireGuard ports from the
 * ephemeral range, net.ipv4.ip_local_reserved_ports) is put back as it was.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';

function netns(): string[] {
  return existsSync('/run/netns') ? readdirSync('/run/netns').sort() : [];
}
/** Live processes matching pattern (zombies hold nothing: a killed orphan waits for init to reap it). */
function procs(pattern: RegExp): string[] {
  try {
    return execFileSync('ps', ['-eo', 'pid=,stat=,args='], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f.length > 2 && !f[1]!.startsWith('Z'))
      .map((f) => `${f[0]} ${f.slice(2).join(' ')}`)
      .filter((l) => pattern.test(l));
  } catch {
    return [];
  }
}
/** Leftovers on disk: etcd data dirs, agent dirs, WireGuard UAPI sockets and logs of our devices. */
function files(): string[] {
  const list = (dir: string, re: RegExp) => (existsSync(dir) ? readdirSync(dir).filter((f) => re.test(f)).map((f) => `${dir}/${f}`) : []);
  return [...list(os.tmpdir(), /^nsmt-(etcd|agent)-/), ...list('/var/run/wireguard', /^nsmwg.*\.(sock|log)$/), ...list(os.tmpdir(), /^(nsmt-ct-|nsmt-vm-|nsm-package-)/), ...mounts()].sort();
}
/** Overlay roots of the system test's containers (test/system). */
function mounts(): string[] {
  try {
    return readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[1] ?? '')
      .filter((m) => m.includes('/nsmt-ct-'))
      .map((m) => `mount ${m}`);
  } catch {
    return [];
  }
}
const WATCHED = /wireguard-go|nsm-agent.* run|dist\/agent\/main\.js run|etcd --name nsmt|systemd-nspawn|qemu-system/;

const RESERVED_PORTS = '/proc/sys/net/ipv4/ip_local_reserved_ports';
const readReserved = (): string | undefined => (existsSync(RESERVED_PORTS) ? readFileSync(RESERVED_PORTS, 'utf8') : undefined);

let before: { ns: Set<string>; procs: Set<string>; files: Set<string>; reserved: string | undefined };

export function setup(): void {
  before = { ns: new Set(netns()), procs: new Set(procs(WATCHED)), files: new Set(files()), reserved: readReserved() };
}

export function teardown(): void {
  if (before.reserved !== undefined && readReserved() !== before.reserved) writeFileSync(RESERVED_PORTS, before.reserved.trim() === '' ? '\n' : before.reserved);
  const leakedNs = netns().filter((n) => !before.ns.has(n));
  const leakedProcs = procs(WATCHED).filter((p) => !before.procs.has(p) && !/\bps -eo\b/.test(p));
  const leakedFiles = files().filter((f) => !before.files.has(f));
  if (leakedNs.length || leakedProcs.length || leakedFiles.length) {
    // vitest reports an error thrown here but still exits 0: make the run fail.
    process.exitCode = 1;
    throw new Error(
      `the test suite leaked: namespaces [${leakedNs.join(', ')}] processes [${leakedProcs.join('; ')}] files [${leakedFiles.join(', ')}]`,
    );
  }
}
