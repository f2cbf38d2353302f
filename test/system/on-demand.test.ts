/**
 * Units started on demand, with a real systemd: the deb installed into a Debian 12 root booted
 * with systemd-nspawn (test/system/lib/container.ts). In order:
 *
 * - an `OnDemand=yes` provider unit stays inactive, and the agent registers its supplier;
 * - a consumer unit with `Connect=` starts, gets its interface and pings the provider, which the
 *   agent started over D-Bus (its own endpoint then replaces the supplier);
 * - after the consumer stops and `IdleStopSec=`, the provider is inactive again;
 * - a provider whose start fails gives the consumer UNIT_START_FAILED naming the unit;
 * - a provider without `OnDemand=` is never started by the agent, nor by the root helper;
 * - the agent stops promptly (no bus connection left open).
 *
 * With NSM_BENCH_OUT set, also measures `nsm-agent connect` to UP with the provider inactive
 * against active (bench/ondemand.mjs) and writes the figures there.
 *
 * Needs root (mounts, nspawn); skipped otherwise. Builds only the deb (--fast) unless
 * NSM_PKG_DIR names a directory that has it.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { Container, missingTools, rootfs } from './lib/container';
import { ROOT, VERSION } from './lib/packages';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/system/on-demand: skipped, needs root (overlay mounts, systemd-nspawn)');
const run = isRoot ? describe : describe.skip;

const T = 180_000;
const IDLE_STOP_S = 3;

async function until(what: string, cond: () => boolean, ms = 20_000, step = 100): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, step));
  }
  if (!cond()) throw new Error(`timed out waiting for: ${what}`);
}

const PROVIDER = `[Unit]
Description=nsmt provider of nsmt-od, started on demand

[X-NetworkServiceMesh]
Provide=nsmt-od?app=od
AddressPool=172.16.78.0/28
OnDemand=yes
IdleStopSec=${IDLE_STOP_S}s

[Service]
ExecStart=/bin/sleep infinity
`;

const CONSUMER = `[Unit]
Description=nsmt consumer of nsmt-od

[X-NetworkServiceMesh]
Connect=kernel://nsmt-od/nsm-1?app=od

[Service]
ExecStartPre=/bin/sh -c 'ip -o -4 addr show dev nsm-1 | grep -q inet'
ExecStart=/bin/sleep infinity
`;

// Its endpoint registers (nsm-connect@ succeeds), then its own start fails.
const BROKEN = `[Unit]
Description=nsmt on-demand provider whose start fails

[X-NetworkServiceMesh]
Provide=nsmt-od-broken
AddressPool=172.16.79.0/29
OnDemand=yes

[Service]
ExecStartPre=/bin/false
ExecStart=/bin/sleep infinity
`;

const BROKEN_CONSUMER = `[Unit]
Description=nsmt consumer of nsmt-od-broken

[X-NetworkServiceMesh]
Connect=kernel://nsmt-od-broken/nsm-1

[Service]
ExecStart=/bin/sleep infinity
`;

const PLAIN = `[Unit]
Description=nsmt provider of nsmt-plain, not on demand

[X-NetworkServiceMesh]
Provide=nsmt-plain
AddressPool=172.16.80.0/29

[Service]
ExecStart=/bin/sleep infinity
`;

const PLAIN_CONSUMER = `[Unit]
Description=nsmt consumer of nsmt-plain

[X-NetworkServiceMesh]
Connect=kernel://nsmt-plain/nsm-1

[Service]
ExecStart=/bin/sleep infinity
`;

/** The deb to install: NSM_PKG_DIR's, or one built here (--fast) into `dir`. */
function deb(dir: string): string {
  const given = process.env['NSM_PKG_DIR'];
  const name = `nsm-agent_${VERSION}_amd64.deb`;
  if (given && existsSync(path.join(given, name))) return path.join(given, name);
  if (!existsSync(path.join(ROOT, 'dist/agent/main.js'))) throw new Error('dist/ is missing: run npm run build first');
  const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts/package.mjs'), '--fast', '--deb', '--out', dir], { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`scripts/package.mjs failed: ${r.stderr}${r.stdout}`);
  return path.join(dir, name);
}

run('units started on demand (system test)', () => {
  let c: Container | undefined;
  let pkgDir: string;
  const figures: Record<string, unknown> = {};

  const ct = (): Container => {
    if (!c) throw new Error('the container is not running (see the failure of the first test)');
    return c;
  };
  const active = (unit: string) => ct().exec(['systemctl', 'is-active', unit]).stdout.trim();
  const show = (unit: string, prop: string) => ct().exec(['systemctl', 'show', '-p', prop, '--value', unit]).stdout.trim();
  const cliJson = (...args: string[]) => {
    const r = ct().exec(['nsm-agent', ...args, '--json']);
    if (r.code !== 0) throw new Error(`nsm-agent ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  const endpoints = (): string[] => cliJson('endpoints').map((e: { name: string }) => e.name);
  const writeUnit = (name: string, text: string) => writeFileSync(ct().path(`etc/systemd/system/${name}`), text);
  const journal = (unit: string) => ct().exec(['journalctl', '--no-pager', '-u', unit]).stdout;

  beforeAll(async () => {
    const missing = missingTools().filter((t) => ['debootstrap', 'systemd-nspawn', 'nsenter', 'dpkg-deb', 'strip'].includes(t));
    if (missing.length) throw new Error(`the system test needs ${missing.join(', ')} (.ci/run installs them)`);
    const lower = rootfs((m) => console.log(m));
    pkgDir = mkdtempSync(path.join(os.tmpdir(), 'nsm-ondemand-pkg-'));
    const file = deb(pkgDir);
    c = await Container.boot(lower);
    mkdirSync(c.path('root/pkgs'), { recursive: true });
    copyFileSync(file, c.path('root/pkgs/nsm-agent.deb'));
    const inst = c.exec(['dpkg', '-i', '/root/pkgs/nsm-agent.deb'], { timeout: 120_000 });
    if (inst.code !== 0) throw new Error(`dpkg -i: ${inst.stdout}${inst.stderr}`);
    writeUnit('nsmt-od-provider.service', PROVIDER);
    writeUnit('nsmt-od-consumer.service', CONSUMER);
    writeUnit('nsmt-od-broken.service', BROKEN);
    writeUnit('nsmt-od-broken-consumer.service', BROKEN_CONSUMER);
    writeUnit('nsmt-plain.service', PLAIN);
    writeUnit('nsmt-plain-consumer.service', PLAIN_CONSUMER);
    // The generator's drop-ins, then the agent reads the OnDemand=yes units again.
    c.sh('systemctl daemon-reload && systemctl reload nsm-agent');
  }, 900_000);

  afterAll(async () => {
    if (c) {
      if (process.env['NSM_ONDEMAND_KEEP_LOG']) console.log(journal('nsm-agent').slice(-6000));
      await c.stop();
      c = undefined;
    }
    if (pkgDir) rmSync(pkgDir, { recursive: true, force: true });
    const out = process.env['NSM_BENCH_OUT'];
    if (out) writeFileSync(out, JSON.stringify(figures, null, 2) + '\n');
  }, 60_000);

  it('an OnDemand=yes provider stays inactive; the agent registers its supplier', async () => {
    expect(active('nsm-agent')).toBe('active');
    expect(active('nsmt-od-provider')).toBe('inactive');
    await until('supplier registered', () => endpoints().some((e) => e.endsWith('-nsmt-od-provider-supplier')));
    expect(endpoints().some((e) => e.endsWith('-nsmt-od-provider'))).toBe(false);
  }, T);

  it('a consumer starts, gets its interface and pings the provider, which the agent started', async () => {
    const start = ct().exec(['systemctl', 'start', 'nsmt-od-consumer']);
    expect(start.code, start.stderr + journal('nsm-connect@nsmt-od-consumer') + journal('nsm-agent').slice(-4000)).toBe(0);
    expect(active('nsmt-od-consumer')).toBe('active');
    expect(active('nsmt-od-provider')).toBe('active');
    const eps = endpoints();
    const own = eps.find((e) => e.endsWith('-nsmt-od-provider'));
    expect(own).toBeTruthy();
    await until('supplier withdrawn', () => !endpoints().some((e) => e.endsWith('-supplier') && e.includes('nsmt-od-provider')));
    const conn = cliJson('status').connections.find((x: { netns: string }) => x.netns === 'nsm-nsmt-od-consumer');
    expect(conn).toMatchObject({ service: 'nsmt-od', endpoint: own, state: 'UP' });
    const peer = String(conn.dstIps[0]).split('/')[0];
    expect(peer).toMatch(/^172\.16\.78\./);
    expect(ct().test(`ip netns exec nsm-nsmt-od-consumer ping -c1 -W2 ${peer}`)).toBe(0);
    expect(journal('nsm-agent')).toMatch(/starting on-demand unit.*nsmt-od-provider\.service/);
  }, T);

  it('after the consumer stops and IdleStopSec=, the provider is stopped and its supplier is back', async () => {
    ct().sh('systemctl stop nsmt-od-consumer');
    const stopped = Date.now();
    await until('provider stopped', () => active('nsmt-od-provider') === 'inactive', (IDLE_STOP_S + 15) * 1000);
    const after = (Date.now() - stopped) / 1000;
    // Not before IdleStopSec= (less the interval at which idleness is checked).
    expect(after).toBeGreaterThanOrEqual(IDLE_STOP_S - 1.5);
    await until('supplier registered again', () => endpoints().some((e) => e.endsWith('-nsmt-od-provider-supplier')));
    expect(endpoints().some((e) => e.endsWith('-nsmt-od-provider'))).toBe(false);
    expect(active('nsm-connect@nsmt-od-provider')).toBe('inactive');
  }, T);

  it('a provider whose start fails gives the consumer UNIT_START_FAILED naming the unit', async () => {
    const r = ct().exec(['systemctl', 'start', 'nsmt-od-broken-consumer']);
    expect(r.code).not.toBe(0);
    const why = journal('nsm-connect@nsmt-od-broken-consumer');
    expect(why).toMatch(/UNIT_START_FAILED/);
    expect(why).toMatch(/on-demand unit nsmt-od-broken\.service \(service nsmt-od-broken\): it failed to start/);
    await until('broken provider supplier back', () => endpoints().some((e) => e.endsWith('-nsmt-od-broken-supplier')));
    ct().exec(['systemctl', 'reset-failed']);
  }, T);

  it('a provider without OnDemand= is never started by the agent', async () => {
    const r = ct().exec(['systemctl', 'start', 'nsmt-plain-consumer']);
    expect(r.code).not.toBe(0);
    expect(journal('nsm-connect@nsmt-plain-consumer')).toMatch(/NO_CANDIDATES|SERVICE_NOT_FOUND/);
    expect(active('nsmt-plain')).toBe('inactive');
    expect(show('nsmt-plain', 'InactiveExitTimestampMonotonic')).toBe('0');
    expect(journal('nsm-agent')).not.toMatch(/starting on-demand unit.*nsmt-plain/);
    // The root helper starts only what the generator listed, whatever it is asked.
    expect(show('nsm-ondemand@x.service', 'Environment')).toBe('"NSM_ONDEMAND_UNITS=nsmt-od-broken.service nsmt-od-provider.service"');
    const ask = (line: string) =>
      ct().exec(['/usr/lib/nsm-agent/bin/node', '-e', `const s=require('net').connect('/run/nsm-ondemand.sock');s.on('connect',()=>s.write(${JSON.stringify(line + '\n')}));s.pipe(process.stdout)`]).stdout;
    expect(ask('start nsmt-plain.service')).toMatch(/nsmt-plain\.service does not declare OnDemand=yes/);
    expect(ask('start nsm-agent.service x')).toMatch(/does not declare OnDemand=yes/);
    await new Promise((r) => setTimeout(r, 500));
    expect(active('nsmt-plain')).toBe('inactive');
    expect(ct().exec(['stat', '-c', '%U %a', '/run/nsm-ondemand.sock']).stdout.trim()).toBe('nsm-agent 600');
    ct().exec(['systemctl', 'reset-failed']);
  }, T);

  it('the agent stops promptly after using the bus, and leaves the on-demand units as they are', () => {
    const t0 = Date.now();
    ct().sh('systemctl stop nsm-agent');
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(show('nsm-agent', 'Result')).toBe('success');
    ct().sh('systemctl start nsm-agent');
    expect(active('nsm-agent')).toBe('active');
  }, T);

  it.runIf(!!process.env['NSM_BENCH_OUT'])('bench: connect to UP with the provider inactive, then active', async () => {
    ct().sh('ip netns add nsmt-bench');
    const connect = (ifname: string) => {
      const t0 = process.hrtime.bigint();
      const r = ct().exec(['nsm-agent', 'connect', `kernel://nsmt-od/${ifname}?app=od`, '--netns', 'nsmt-bench', '--json']);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (r.code !== 0) throw new Error(`connect: ${r.stderr}`);
      return { ms, id: JSON.parse(r.stdout).id as string };
    };
    const rounds: { coldMs: number; warmMs: number; unitStartMs: number; helperMs: number }[] = [];
    for (let i = 0; i < 5; i++) {
      if (active('nsmt-od-provider') !== 'inactive') ct().sh('systemctl stop nsmt-od-provider');
      await until('provider inactive', () => active('nsmt-od-provider') === 'inactive' && endpoints().some((e) => e.endsWith('-nsmt-od-provider-supplier')));
      const cold = connect('nsm-1');
      const warm = connect('nsm-2');
      const mono = (unit: string, p: string) => Number(show(unit, p));
      rounds.push({
        coldMs: cold.ms,
        warmMs: warm.ms,
        unitStartMs: (mono('nsmt-od-provider', 'ActiveEnterTimestampMonotonic') - mono('nsmt-od-provider', 'InactiveExitTimestampMonotonic')) / 1000,
        helperMs: (mono('nsm-connect@nsmt-od-provider', 'ActiveEnterTimestampMonotonic') - mono('nsm-connect@nsmt-od-provider', 'InactiveExitTimestampMonotonic')) / 1000,
      });
      ct().sh(`nsm-agent disconnect ${cold.id} && nsm-agent disconnect ${warm.id}`);
    }
    figures['rounds'] = rounds;
    ct().sh('ip netns del nsmt-bench');
  }, 300_000);
});
