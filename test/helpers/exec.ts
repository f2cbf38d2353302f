/** Shell helpers for tests: checks from the outside with iproute2 and ping. */
import { spawnSync } from 'node:child_process';

export function sh(cmd: string, args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

export function ping(netns: string, ip: string, count = 2): boolean {
  return sh('ip', ['netns', 'exec', netns, 'ping', '-c', String(count), '-i', '0.2', '-W', '1', ip]).code === 0;
}

export function links(netns: string): { ifname: string; mtu: number; operstate: string }[] {
  const r = sh('ip', ['-n', netns, '-j', 'link', 'show']);
  if (r.code !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout);
}

export function addrs(netns: string, dev: string): string[] {
  const r = sh('ip', ['-n', netns, '-j', 'addr', 'show', 'dev', dev]);
  if (r.code !== 0) return [];
  return (JSON.parse(r.stdout)[0]?.addr_info ?? []).map((a: any) => `${a.local}/${a.prefixlen}`);
}

export function addNetns(name: string): void {
  const r = sh('ip', ['netns', 'add', name]);
  if (r.code !== 0) throw new Error(r.stderr);
  sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
}

export function delNetns(name: string): void {
  sh('ip', ['netns', 'del', name]);
}

export function uniq(prefix: string): string {
  return `${prefix}${process.pid.toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`.slice(0, 15);
}

export const isRoot = process.getuid?.() === 0;

/** Polls `probe` every `step` ms until it returns something truthy (returned) or `ms` pass (undefined). */
export async function until<T>(probe: () => T | undefined | false, ms: number, step = 50): Promise<T | undefined> {
  const end = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > end) return undefined;
    await new Promise((r) => setTimeout(r, step));
  }
}
