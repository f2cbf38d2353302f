// @ts-check
/**
 * Network namespaces by name (`ip netns`) and checks on them from the outside with iproute2
 * and ping.
 */
import { spawn } from 'node:child_process';
import { sh } from './exec.mjs';

/**
 * `ip netns add NAME` with its loopback up.
 * @param {string} name
 */
export function addNetns(name) {
  const r = sh('ip', ['netns', 'add', name]);
  if (r.code !== 0) throw new Error(`ip netns add ${name}: ${r.stderr.trim()}`);
  sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
}

/**
 * `ip netns del NAME`; never throws.
 * @param {string} name
 */
export function delNetns(name) {
  sh('ip', ['netns', 'del', name]);
}

/**
 * True when `count` echoes from `netns` to `ip` are answered.
 * @param {string} netns
 * @param {string} ip
 * @param {number} [count]
 */
export function ping(netns, ip, count = 2) {
  return sh('ip', ['netns', 'exec', netns, 'ping', '-c', String(count), '-i', '0.2', '-W', '1', ip]).code === 0;
}

/**
 * The links of `netns` as `ip -j link show` lists them.
 * @param {string} netns
 * @returns {{ ifname: string; mtu: number; operstate: string; [key: string]: any }[]}
 */
export function links(netns) {
  const r = sh('ip', ['-n', netns, '-j', 'link', 'show']);
  if (r.code !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout);
}

/**
 * The addresses of `dev` in `netns` as "ADDR/LEN" (none if the device is missing).
 * @param {string} netns
 * @param {string} dev
 * @returns {string[]}
 */
export function addrs(netns, dev) {
  const r = sh('ip', ['-n', netns, '-j', 'addr', 'show', 'dev', dev]);
  if (r.code !== 0) return [];
  return (JSON.parse(r.stdout)[0]?.addr_info ?? []).map((/** @type {any} */ a) => `${a.local}/${a.prefixlen}`);
}

/**
 * The global addresses of `dev` in `netns` without their lengths, IPv4 first (none if the
 * device is missing).
 * @param {string} netns
 * @param {string} dev
 * @returns {string[]}
 */
export function globalAddrs(netns, dev) {
  const r = sh('ip', ['-n', netns, '-j', 'addr', 'show', 'dev', dev]);
  if (r.code !== 0) return [];
  return (JSON.parse(r.stdout)[0]?.addr_info ?? []).filter((/** @type {any} */ a) => a.scope === 'global').map((/** @type {any} */ a) => a.local);
}

/**
 * One echo (2 s to answer) from each namespace to each address, all at once; the pairs that
 * got no answer, as "netns -> address".
 * @param {[string, string][]} pairs
 * @returns {Promise<string[]>}
 */
export async function unreachable(pairs) {
  const results = await Promise.all(
    pairs.map(
      ([ns, addr]) =>
        /** @type {Promise<string | undefined>} */ (
          new Promise((resolve) => {
            const p = spawn('ip', ['netns', 'exec', ns, 'ping', addr.includes(':') ? '-6' : '-4', '-c', '1', '-W', '2', addr], { stdio: 'ignore' });
            p.on('exit', (code) => resolve(code === 0 ? undefined : `${ns} -> ${addr}`));
          })
        ),
    ),
  );
  return results.filter((x) => x !== undefined);
}

/**
 * A counter of the `Ip:` lines of /proc/net/snmp in `netns` (e.g. 'FragCreates').
 * @param {string} netns
 * @param {string} name
 * @returns {number}
 */
export function ipCounter(netns, name) {
  const lines = sh('ip', ['netns', 'exec', netns, 'cat', '/proc/net/snmp']).stdout.split('\n').filter((l) => l.startsWith('Ip:'));
  const [names, values] = lines.map((l) => l.trim().split(/\s+/));
  const i = names ? names.indexOf(name) : -1;
  if (i < 0 || !values) throw new Error(`no Ip counter ${name} in ${netns}`);
  return Number(values[i]);
}
