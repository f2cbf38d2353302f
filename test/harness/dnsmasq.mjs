// @ts-check
/** Debian's dnsmasq as the DNS server of a test, in a namespace of its own choosing. */
import { spawn } from 'node:child_process';
import { sh, until } from './exec.mjs';

export const hasDnsmasq = () => sh('test', ['-x', '/usr/sbin/dnsmasq']).code === 0;

/**
 * dnsmasq in `netns`, answering on `ip` from the given options only (authoritative for *.test:
 * unknown names are NXDOMAIN, never forwarded); stop it by PID (kill the returned process).
 * @param {string} netns
 * @param {string} ip
 * @param {string[]} records  dnsmasq options (--srv-host=..., --host-record=...)
 * @returns {Promise<import('node:child_process').ChildProcess>}
 */
export async function startDnsmasq(netns, ip, records) {
  const args = [
    'netns', 'exec', netns, '/usr/sbin/dnsmasq',
    '--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--pid-file=',
    '--bind-interfaces', `--listen-address=${ip}`, '--port=53', '--user=root', '--group=root',
    '--local=/test/', '--local-ttl=30',
    ...records,
  ];
  const p = spawn('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr?.on('data', (d) => (err += String(d)));
  const listening = () => sh('ip', ['netns', 'exec', netns, 'ss', '-lnu', `sport = :53`]).stdout.includes(ip);
  if (!(await until(() => listening() || p.exitCode !== null, 5_000)) || p.exitCode !== null) {
    p.kill('SIGKILL');
    throw new Error(`dnsmasq did not start: ${err}`);
  }
  return p;
}

/**
 * dnsmasq options publishing one of a domain's NSM services as upstream's dnsresolve looks it
 * up: SRV `<service>.nsm-system.<domain>` for the port (its target is ignored) and an A record
 * on the same name for the address.
 * @param {'registry' | 'nsmgr-proxy'} service
 * @param {string} domain
 * @param {string} ip
 * @param {number | string} port
 * @returns {string[]}
 */
export function nsmSystemRecords(service, domain, ip, port) {
  const name = `${service}.nsm-system.${domain}`;
  return [`--srv-host=${name},ignored.${domain},${port}`, `--host-record=${name},${ip}`];
}
