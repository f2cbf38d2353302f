/**
 * With a real systemd: the deb and rpm built by scripts/package.mjs, installed into a
 * minimal Debian 12 (no nodejs) booted with systemd-nspawn (test/system/lib/container.ts).
 *
 * Static checks on the host: lintian (no errors), the rpm's file list, scriptlets and an
 * install/erase into an rpm root. Inside the container, in order: install and sd_notify
 * readiness; units with [X-NetworkServiceMesh] (provider, consumer that pings it, a unit asking
 * for a service that does not exist, daemon-reload picking up an edited unit); agent restarts
 * (clean, and SIGKILL + Restart=) with the consumer still running on its interface; reload of
 * agent.yaml; stopping units; a vL3 network of units, one member resolving the others by name
 * while the container's /etc/resolv.conf stays as it was; upgrade keeping the edited agent.yaml; remove and purge.
 *
 * Needs root (mounts, nspawn); skipped otherwise. The debootstrap root is cached under
 * /var/cache/nsm-agent-test (about 35 s the first time on a machine).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdirSync, readFileSync, rmSync, writeFileSync, copyFileSync, existsSync, lstatSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { Container, missingTools, mountOverlay, rootfs } from './lib/container';
import { packages, Packages, VERSION, VERSION2 } from './lib/packages';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/system/host-citizen: skipped, needs root (overlay mounts, systemd-nspawn)');
const run = isRoot ? describe : describe.skip;

const T = 240_000;

async function until(what: string, cond: () => boolean, ms = 15_000, step = 100): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, step));
  }
  if (!cond()) throw new Error(`timed out waiting for: ${what}`);
}

function host(cmd: string, args: string[], timeout = 120_000) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' } });
  return { code: r.status ?? -1, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

const PROVIDER = `[Unit]
Description=nsmt provider of nsmt-svc

[X-NetworkServiceMesh]
Provide=nsmt-svc?app=test
AddressPool=172.16.77.0/29

[Service]
ExecStart=/bin/sleep infinity
`;

const CONSUMER = `[Unit]
Description=nsmt consumer of nsmt-svc
After=nsmt-provider.service

[X-NetworkServiceMesh]
Connect=kernel://nsmt-svc/nsm-1?app=test

[Service]
# Runs in the unit's namespace: the unit fails unless nsm-1 is up with an address before it starts.
ExecStartPre=/bin/sh -c 'ip -o link show dev nsm-1 up | grep -q . && ip -o -4 addr show dev nsm-1 | grep -q inet'
ExecStart=/bin/sleep infinity
`;

const BAD = `[Unit]
Description=nsmt unit asking for a service nobody provides

[X-NetworkServiceMesh]
Connect=kernel://no-such-service/nsm-1

[Service]
ExecStart=/bin/sleep infinity
`;

// A member that, once up, resolves the other members by name in its own namespace (where the
// agent's resolv.conf is bound over /etc/resolv.conf): <name>.<service>, <name> through the
// search domain, and pings one by name.
const VL3_RESOLVER = `[Unit]
Description=nsmt member of nsmt-vl3 that resolves the others
After=nsmt-vl3.service

[X-NetworkServiceMesh]
Connect=kernel://nsmt-vl3/nsm-1

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'cat /etc/resolv.conf > /run/nsmt-m3.resolv; getent ahostsv4 nsmt-m2.nsmt-vl3 > /run/nsmt-m3.out && getent ahostsv4 nsmt-m1 >> /run/nsmt-m3.out && ping -c1 -W2 nsmt-m2.nsmt-vl3'
`;

// A vL3 endpoint unit: its namespace is the router; members connect to the service.
const VL3_ROUTER = `[Unit]
Description=nsmt vL3 endpoint of nsmt-vl3

[X-NetworkServiceMesh]
Provide=nsmt-vl3
VL3IPAM=unix:///run/nsm-agent/vl3ipam.sock

[Service]
ExecStart=/bin/sleep infinity
`;

const VL3_MEMBER = `[Unit]
Description=nsmt member of nsmt-vl3
After=nsmt-vl3.service

[X-NetworkServiceMesh]
Connect=kernel://nsmt-vl3/nsm-1

[Service]
ExecStart=/bin/sleep infinity
`;

const LATE_PLAIN = `[Unit]
Description=nsmt unit that gets a section later
After=nsmt-provider.service

[Service]
ExecStart=/bin/sleep infinity
`;

run('host citizen: packages, systemd units, sd_notify (system test)', () => {
  let pkgs: Packages;
  let lower: string;
  let c: Container | undefined;
  const figures: Record<string, number | string> = {};

  /** The booted container; a clear failure for the tests after a failed boot. */
  const ct = (): Container => {
    if (!c) throw new Error('the container is not running (see the failure of the install test)');
    return c;
  };
  const active = (unit: string) => ct().exec(['systemctl', 'is-active', unit]).stdout.trim();
  const show = (unit: string, prop: string) => ct().exec(['systemctl', 'show', '-p', prop, '--value', unit]).stdout.trim();
  const cli = (...args: string[]) => ct().exec(['nsm-agent', ...args]);
  const cliJson = (...args: string[]) => {
    const r = cli(...args, '--json');
    if (r.code !== 0) throw new Error(`nsm-agent ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  const netnsList = () => ct().exec(['ip', 'netns', 'list']).stdout;
  const writeUnit = (name: string, text: string) => writeFileSync(ct().path(`etc/systemd/system/${name}`), text);

  beforeAll(async () => {
    const missing = missingTools();
    if (missing.length) throw new Error(`the system test needs ${missing.join(', ')} (.ci/run installs them)`);
    const t0 = Date.now();
    lower = rootfs((m) => console.log(m));
    figures['rootfsMs'] = Date.now() - t0;
    const t1 = Date.now();
    pkgs = packages();
    figures['buildMs'] = Date.now() - t1;
  }, 900_000);

  afterAll(async () => {
    if (c) {
      await c.stop();
      c = undefined;
    }
    if (pkgs?.own) rmSync(pkgs.dir, { recursive: true, force: true });
    const out = process.env['NSM_BENCH_OUT'];
    if (out) writeFileSync(out, JSON.stringify(figures, null, 2) + '\n');
  }, 60_000);

  it('the deb has no lintian errors', () => {
    const r = host('lintian', ['--fail-on', 'error', pkgs.deb], 300_000);
    expect(r.out.split('\n').filter((l) => /^E: /.test(l))).toEqual([]);
    expect(r.code, r.out).toBe(0);
  }, T);

  it('the rpm lists the runtime, units and config, and its scriptlets follow the $1 convention', () => {
    const files = host('rpm', ['-qpl', pkgs.rpm]).out.split('\n');
    for (const f of [
      '/usr/sbin/nsm-agent',
      '/usr/lib/nsm-agent/bin/node',
      '/usr/lib/nsm-agent/native/build/Release/nsm_native.node',
      '/usr/lib/nsm-agent/dist/agent/main.js',
      '/usr/lib/systemd/system/nsm-agent.service',
      '/usr/lib/systemd/system/nsm-connect@.service',
      '/usr/lib/systemd/system-generators/nsm-agent-generator',
      '/usr/lib/sysusers.d/nsm-agent.conf',
      '/usr/lib/sysctl.d/60-nsm-agent.conf',
      '/etc/nsm-agent/agent.yaml',
    ]) {
      expect(files).toContain(f);
    }
    const scripts = host('rpm', ['-qp', '--scripts', pkgs.rpm]).out;
    expect(scripts).toMatch(/preinstall scriptlet/);
    expect(scripts).toMatch(/if \[ \$1 -eq 1 \].*preset nsm-agent\.service/s);
    expect(scripts).toMatch(/if \[ \$1 -eq 0 \].*disable --now nsm-agent\.service/s);
    expect(scripts).toMatch(/if \[ \$1 -ge 1 \].*try-restart nsm-agent\.service/s);
    expect(host('rpm', ['-qp', '--configfiles', pkgs.rpm]).out).toMatch(/\/etc\/nsm-agent\/agent\.yaml/);
    expect(host('rpm', ['-qp', '--requires', pkgs.rpm]).out).not.toMatch(/node|nodejs/);
    expect(host('rpm', ['-K', pkgs.rpm]).out).toMatch(/digests OK/);
  }, T);

  it('the rpm installs into an rpm root (scriptlets run there), runs without Node, and erases cleanly', () => {
    const o = mountOverlay(lower);
    try {
      const r = o.root;
      expect(host('rpm', ['--root', r, '--initdb']).code).toBe(0);
      const inst = host('rpm', ['--root', r, '-ivh', '--nodeps', pkgs.rpm]);
      expect(inst.code, inst.out).toBe(0);
      expect(existsSync(path.join(r, 'usr/bin/node'))).toBe(false);
      expect(readFileSync(path.join(r, 'etc/passwd'), 'utf8')).toMatch(/^nsm-agent:/m);
      // preset enabled it (an absolute symlink, resolved inside the root)
      expect(lstatSync(path.join(r, 'etc/systemd/system/multi-user.target.wants/nsm-agent.service'), { throwIfNoEntry: false })?.isSymbolicLink()).toBe(true);
      const v = host('chroot', [r, '/usr/sbin/nsm-agent', 'version']);
      expect(v.out.trim()).toBe(`nsm-agent ${VERSION}`);
      writeFileSync(path.join(r, 'etc/nsm-agent/agent.yaml'), readFileSync(path.join(r, 'etc/nsm-agent/agent.yaml'), 'utf8') + '# edited\n');
      const erase = host('rpm', ['--root', r, '-e', 'nsm-agent']);
      expect(erase.code, erase.out).toBe(0);
      expect(existsSync(path.join(r, 'usr/lib/nsm-agent'))).toBe(false);
      expect(lstatSync(path.join(r, 'etc/systemd/system/multi-user.target.wants/nsm-agent.service'), { throwIfNoEntry: false })).toBeUndefined();
      expect(existsSync(path.join(r, 'etc/nsm-agent/agent.yaml.rpmsave'))).toBe(true);
    } finally {
      o.cleanup();
    }
  }, T);

  it('dpkg -i on a root without nodejs: the service becomes active through sd_notify and answers', async () => {
    const t0 = Date.now();
    c = await Container.boot(lower);
    figures['bootMs'] = Date.now() - t0;
    expect(c.test('command -v node || command -v nodejs')).not.toBe(0);
    mkdirSync(c.path('root/pkgs'), { recursive: true });
    for (const f of [pkgs.deb, pkgs.deb2]) copyFileSync(f, c.path(`root/pkgs/${path.basename(f)}`));
    const t1 = Date.now();
    const inst = c.exec(['dpkg', '-i', `/root/pkgs/${path.basename(pkgs.deb)}`], { timeout: 120_000 });
    figures['dpkgInstallMs'] = Date.now() - t1;
    expect(inst.code, inst.stdout + inst.stderr).toBe(0);
    // postinst starts it: active only after READY=1 (Type=notify).
    expect(show('nsm-agent', 'Type')).toBe('notify');
    expect(active('nsm-agent')).toBe('active');
    expect(c.exec(['systemctl', 'is-enabled', 'nsm-agent']).stdout.trim()).toBe('enabled');
    expect(show('nsm-agent', 'StatusText')).toMatch(/^serving on \/run\/nsm-agent\/agent\.sock, 0 endpoints, 0 connections/);
    expect(show('nsm-agent', 'WatchdogUSec')).toBe('30s');
    expect(show('nsm-agent', 'User')).toBe('nsm-agent');
    const st = cliJson('status');
    expect(st.version).toBe(VERSION);
    // Agent health under systemd: identity with its expiry, listeners, uptime.
    expect(st.svid.spiffeId).toMatch(/^spiffe:\/\/[^/]+\//);
    expect(st.svid.expires).toBeGreaterThan(Date.now());
    expect(st.listen).toContain('unix:///run/nsm-agent/agent.sock');
    expect(st.started).toBeLessThanOrEqual(Date.now());
    const header = cli('status').stdout;
    expect(header).toMatch(/^agent \S+ \(nsm-agent .+\), up \d+/m);
    expect(header).toMatch(/^identity: +spiffe:\/\/\S+ from \w+, expires in \S+ \(\d{4}-\d\d-\d\dT/m);
    expect(header).toMatch(/^listening: unix:\/\/\/run\/nsm-agent\/agent\.sock/m);
    // Logs go to journald with their priority and fields: "agent ready" is info (6), with the
    // agent's name as a field of its own.
    const entries = c
      .sh('journalctl -u nsm-agent -o json --no-pager')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { MESSAGE?: string; PRIORITY?: string; AGENT?: string });
    const ready = entries.find((e) => typeof e.MESSAGE === 'string' && /^(level=info msg=)?"agent ready"/.test(e.MESSAGE));
    expect(ready?.PRIORITY).toBe('6');
    expect(ready?.AGENT).toBeTruthy();
    // Units verify cleanly (the minimal root has no man-db for Documentation=man:).
    const verify = c.exec(['systemd-analyze', 'verify', '--man=no', 'nsm-agent.service', 'nsm-connect@x.service']);
    expect(verify.stderr.trim(), verify.stderr).toBe('');
    expect(verify.code).toBe(0);
    // Watchdog pings keep it alive; idle RSS under systemd after a few seconds.
    await new Promise((r) => setTimeout(r, 5_000));
    const pid = show('nsm-agent', 'MainPID');
    const rss = /VmRSS:\s+(\d+) kB/.exec(c.sh(`cat /proc/${pid}/status`))?.[1];
    figures['idleRssKiB'] = Number(rss);
    figures['debBytes'] = readFileSync(pkgs.deb).length;
    figures['rpmBytes'] = readFileSync(pkgs.rpm).length;
    figures['installedKiB'] = Number(c.sh("dpkg-query -W -f='${Installed-Size}' nsm-agent"));
    expect(active('nsm-agent')).toBe('active');
    expect(show('nsm-agent', 'NRestarts')).toBe('0');
  }, T);

  it('a consumer unit starts after its nsm-1 is up and pings the provider unit', async () => {
    writeUnit('nsmt-provider.service', PROVIDER);
    writeUnit('nsmt-consumer.service', CONSUMER);
    ct().sh('systemctl daemon-reload');
    // The generator's drop-ins.
    expect(show('nsmt-consumer', 'Requires')).toMatch(/nsm-connect@nsmt-consumer\.service/);
    expect(show('nsmt-consumer', 'NetworkNamespacePath')).toBe('/run/netns/nsm-nsmt-consumer');
    const start = ct().exec(['systemctl', 'start', 'nsmt-provider', 'nsmt-consumer']);
    expect(start.code, start.stderr + ct().exec(['systemctl', 'status', 'nsmt-consumer', 'nsm-connect@nsmt-consumer']).stdout).toBe(0);
    expect(active('nsmt-provider')).toBe('active');
    expect(active('nsmt-consumer')).toBe('active');
    expect(active('nsm-connect@nsmt-consumer')).toBe('active');
    // The unit's process lives in its own namespace, which holds nsm-1.
    const pid = show('nsmt-consumer', 'MainPID');
    expect(ct().sh(`ip netns identify ${pid}`).trim()).toBe('nsm-nsmt-consumer');
    const eps = cliJson('endpoints');
    expect(eps.map((e: { name: string }) => e.name)).toContain('vm-nsmt-provider');
    const conn = cliJson('status').connections.find((x: { interface: string }) => x.interface === 'nsm-1');
    expect(conn).toMatchObject({ netns: 'nsm-nsmt-consumer', service: 'nsmt-svc', endpoint: 'vm-nsmt-provider', state: 'UP' });
    // Client and endpoint on this host: a local veth, listed as this host's and as served.
    expect(conn).toMatchObject({ direction: 'local', route: { mechanism: 'KERNEL', peerAgent: '', peerUrl: '' }, lastHeal: null });
    expect(conn.localIps).toEqual(conn.srcIps);
    expect(conn.peerIps).toEqual(conn.dstIps);
    expect(conn.created).toBeLessThanOrEqual(Date.now());
    const table = cli('status').stdout;
    for (const line of table.split('\n')) expect(line.length).toBeLessThanOrEqual(100);
    const [own, served] = table.split('SERVED');
    expect(own).toMatch(new RegExp(`^${conn.id} +nsmt-svc +UP +veth \\(local\\) +\\d`, 'm'));
    expect(own).toContain(`    nsm-1 in nsm-nsmt-consumer: ${conn.srcIps[0]} -> vm-nsmt-provider ${conn.dstIps[0]}`);
    expect(served).toMatch(new RegExp(`^\\S+ +${conn.id} +nsmt-svc +vm-nsmt-provider +UP +veth \\(local\\) +\\d`, 'm'));
    expect(served).toContain(`    ${conn.dstIps[0]} <- client ${conn.srcIps[0]}`);
    const peer = String(conn.dstIps[0]).split('/')[0];
    expect(ct().test(`ip netns exec nsm-nsmt-consumer ping -c1 -W2 ${peer}`)).toBe(0);
    // The agent's lines about the connection carry the service as a journal field.
    const bySvc = ct().exec(['journalctl', '--no-pager', '-o', 'json', 'NETWORK_SERVICE=nsmt-svc']).stdout.split('\n').filter(Boolean);
    expect(bySvc.length).toBeGreaterThan(0);
    expect(bySvc.map((l) => JSON.parse(l)._SYSTEMD_UNIT)).toContain('nsm-agent.service');
    expect(show('nsm-agent', 'StatusText')).toMatch(/1 endpoint, 1 connection/);
  }, T);

  it('a unit whose service does not exist fails to start, with the reason in systemctl status', () => {
    writeUnit('nsmt-bad.service', BAD);
    ct().sh('systemctl daemon-reload');
    const r = ct().exec(['systemctl', 'start', 'nsmt-bad']);
    expect(r.code).not.toBe(0);
    expect(active('nsmt-bad')).not.toBe('active');
    const status = ct().exec(['systemctl', 'status', '--no-pager', '-n', '20', 'nsmt-bad']).stdout;
    expect(status).toMatch(/network service no-such-service is not found \(SERVICE_NOT_FOUND\)/);
    expect(netnsList()).not.toMatch(/nsm-nsmt-bad/);
    ct().exec(['systemctl', 'reset-failed']);
  }, T);

  it('daemon-reload picks up a section added to a unit', async () => {
    writeUnit('nsmt-late.service', LATE_PLAIN);
    ct().sh('systemctl daemon-reload && systemctl start nsmt-late');
    expect(ct().exec(['ip', 'netns', 'identify', show('nsmt-late', 'MainPID')]).stdout.trim()).toBe('');
    writeUnit('nsmt-late.service', LATE_PLAIN.replace('[Service]', '[X-NetworkServiceMesh]\nConnect=kernel://nsmt-svc/nsm-7\n\n[Service]'));
    ct().sh('systemctl daemon-reload && systemctl restart nsmt-late');
    expect(ct().sh(`ip netns identify ${show('nsmt-late', 'MainPID')}`).trim()).toBe('nsm-nsmt-late');
    expect(ct().test('ip -n nsm-nsmt-late link show dev nsm-7 up | grep -q .')).toBe(0);
    ct().sh('systemctl stop nsmt-late');
    await until('nsm-nsmt-late removed', () => !netnsList().includes('nsm-nsmt-late'));
  }, T);

  it('agent restarts do not stop the consumer: clean restart restores its connection, SIGKILL + Restart= keeps its interface', async () => {
    const ifindex = () => ct().sh('ip -n nsm-nsmt-consumer -o link show dev nsm-1').split(':')[0];
    // Clean restart: connections are closed on stop and made again from the unit's spec.
    ct().sh('systemctl restart nsm-agent');
    expect(active('nsmt-consumer')).toBe('active');
    await until('consumer connection restored', () => cliJson('unit', 'list').find((u: { unit: string }) => u.unit === 'nsmt-consumer.service')?.connections[0]?.up === true);
    const before = ifindex();
    const pid = show('nsm-agent', 'MainPID');
    // Unclean: nothing is cleaned up; systemd restarts the agent (Restart=on-failure).
    ct().sh('systemctl kill -s KILL nsm-agent');
    await until('agent restarted', () => show('nsm-agent', 'NRestarts') === '1' && active('nsm-agent') === 'active' && show('nsm-agent', 'MainPID') !== pid, 30_000);
    expect(active('nsmt-consumer')).toBe('active');
    expect(active('nsm-connect@nsmt-consumer')).toBe('active');
    expect(ifindex()).toBe(before); // the same interface: the restarted agent did not remove it
    expect(ct().test('ip netns exec nsm-nsmt-consumer ping -c1 -W2 172.16.77.0')).toBe(0);
    // The provider's endpoint is registered again by the restarted agent.
    expect(cliJson('endpoints').map((e: { name: string }) => e.name)).toContain('vm-nsmt-provider');
  }, T);

  it('a hung agent stops pinging the watchdog and systemd restarts it', async () => {
    // A short watchdog for the test; the shipped unit has WatchdogSec=30s.
    mkdirSync(ct().path('etc/systemd/system/nsm-agent.service.d'), { recursive: true });
    writeFileSync(ct().path('etc/systemd/system/nsm-agent.service.d/test-watchdog.conf'), '[Service]\nWatchdogSec=2s\nWatchdogSignal=SIGKILL\n');
    ct().sh('systemctl daemon-reload && systemctl restart nsm-agent');
    const restarts = Number(show('nsm-agent', 'NRestarts'));
    await new Promise((r) => setTimeout(r, 3_000)); // pings every second keep it alive
    expect(Number(show('nsm-agent', 'NRestarts'))).toBe(restarts);
    const pid = show('nsm-agent', 'MainPID');
    ct().sh(`kill -STOP ${pid}`);
    await until('watchdog restart', () => Number(show('nsm-agent', 'NRestarts')) === restarts + 1 && active('nsm-agent') === 'active', 20_000);
    expect(ct().exec(['journalctl', '-u', 'nsm-agent', '--no-pager', '-n', '50']).stdout).toMatch(/Watchdog timeout/);
    expect(active('nsmt-consumer')).toBe('active');
    rmSync(ct().path('etc/systemd/system/nsm-agent.service.d'), { recursive: true, force: true });
    ct().sh('systemctl daemon-reload && systemctl restart nsm-agent');
    expect(show('nsm-agent', 'WatchdogUSec')).toBe('30s');
  }, T);

  it('systemctl reload after adding an endpoint to agent.yaml registers it, without a restart', () => {
    const pid = show('nsm-agent', 'MainPID');
    const conf = ct().path('etc/nsm-agent/agent.yaml');
    const text = readFileSync(conf, 'utf8');
    expect(text).toMatch(/^endpoints: \[\]$/m);
    writeFileSync(conf, text.replace(/^endpoints: \[\]$/m, 'endpoints: [{name: reload-ep, services: [reload-svc], cidr: 172.16.78.0/30}]'));
    const r = ct().exec(['systemctl', 'reload', 'nsm-agent']);
    expect(r.code, r.stderr).toBe(0);
    expect(show('nsm-agent', 'MainPID')).toBe(pid);
    expect(cliJson('endpoints').map((e: { name: string }) => e.name)).toContain('reload-ep');
    expect(cliJson('services').map((s: { name: string }) => s.name)).toContain('reload-svc');
    // A broken file is refused with the reason; the agent keeps running as it was.
    writeFileSync(conf, readFileSync(conf, 'utf8') + 'bogusKey: 1\n');
    const bad = ct().exec(['systemctl', 'reload', 'nsm-agent']);
    expect(bad.code).not.toBe(0);
    expect(ct().exec(['journalctl', '-u', 'nsm-agent', '--no-pager', '-n', '30']).stdout).toMatch(/bogusKey: unknown key/);
    expect(active('nsm-agent')).toBe('active');
    writeFileSync(conf, readFileSync(conf, 'utf8').replace('bogusKey: 1\n', ''));
    expect(ct().exec(['systemctl', 'reload', 'nsm-agent']).code).toBe(0);
  }, T);

  it('stopping the consumer removes its interface and namespace; stopping the provider unregisters it', async () => {
    ct().sh('systemctl stop nsmt-consumer');
    await until('consumer namespace removed', () => !netnsList().includes('nsm-nsmt-consumer') && active('nsm-connect@nsmt-consumer') === 'inactive');
    expect(cliJson('unit', 'list').map((u: { unit: string }) => u.unit)).not.toContain('nsmt-consumer.service');
    ct().sh('systemctl stop nsmt-provider');
    await until('provider unregistered', () => !cliJson('endpoints').some((e: { name: string }) => e.name === 'vm-nsmt-provider'));
    await until('provider namespace removed', () => !netnsList().includes('nsm-nsmt-provider'));
    expect(show('nsm-agent', 'StatusText')).toMatch(/1 endpoint, 0 connections/);
  }, T);

  it('a vL3 network under systemd: member units reach each other and the endpoint unit, and resolve each other by name', async () => {
    const conf = ct().path('etc/nsm-agent/agent.yaml');
    writeFileSync(conf, readFileSync(conf, 'utf8') + 'vl3ipam: {listen: "unix:///run/nsm-agent/vl3ipam.sock", prefix: 172.16.200.0/22, clientPrefixLength: 24}\n');
    // the host's resolv.conf: never written (contents, inode, mtime)
    const hostResolv = () => ct().exec(['sh', '-c', 'cat /etc/resolv.conf; stat -L -c "%i %s %Y" /etc/resolv.conf']);
    const resolvBefore = hostResolv();
    ct().sh('systemctl restart nsm-agent');
    writeUnit('nsmt-vl3.service', VL3_ROUTER);
    writeUnit('nsmt-m1.service', VL3_MEMBER);
    writeUnit('nsmt-m2.service', VL3_MEMBER);
    ct().sh('systemctl daemon-reload');
    const start = ct().exec(['systemctl', 'start', 'nsmt-vl3', 'nsmt-m1', 'nsmt-m2']);
    expect(start.code, start.stderr + ct().exec(['journalctl', '-u', 'nsm-agent', '--no-pager', '-n', '30']).stdout).toBe(0);
    const addr = (unit: string) => /inet (\S+)\//.exec(ct().sh(`ip -n nsm-${unit} -o -4 addr show dev nsm-1`))?.[1] ?? '';
    const [m1, m2] = [addr('nsmt-m1'), addr('nsmt-m2')];
    expect(m1).toMatch(/^172\.16\.200\.\d+$/);
    expect(m2).toMatch(/^172\.16\.200\.\d+$/);
    expect(m1).not.toBe(m2);
    expect(ct().test(`ip netns exec nsm-nsmt-m1 ping -c1 -W2 ${m2}`)).toBe(0);
    expect(ct().test(`ip netns exec nsm-nsmt-m2 ping -c1 -W2 ${m1}`)).toBe(0);
    // the endpoint unit's own namespace is the router: it answers at the prefix's address
    expect(ct().test('ip netns exec nsm-nsmt-m1 ping -c1 -W2 172.16.200.0')).toBe(0);
    const ep = cliJson('status').endpoints.find((e: { name: string }) => e.name === 'vm-nsmt-vl3');
    expect(ep.vl3).toMatchObject({ prefixes: ['172.16.200.0/24'], addresses: ['172.16.200.0/32'], members: 2 });

    // a third member resolves the others by name from inside its unit
    writeUnit('nsmt-m3.service', VL3_RESOLVER);
    ct().sh('systemctl daemon-reload');
    const m3 = ct().exec(['systemctl', 'start', 'nsmt-m3']);
    const why = () => `${m3.stderr}\n${ct().exec(['cat', '/run/nsmt-m3.resolv']).stdout}\n${ct().exec(['journalctl', '-u', 'nsmt-m3', '-u', 'nsm-agent', '--no-pager', '-n', '40']).stdout}`;
    expect(m3.code, why()).toBe(0);
    const resolvM3 = ct().sh('cat /run/nsmt-m3.resolv');
    expect(resolvM3).toMatch(/^nameserver 127\.0\.0\.1$/m);
    expect(resolvM3).toMatch(/^search nsmt-vl3( |$)/m);
    const out = ct().sh('cat /run/nsmt-m3.out');
    expect(out).toContain(`${m2} `);
    expect(out).toContain(`${m1} `);
    expect(ct().test('test -e /run/nsm-agent/dns/nsm-nsmt-m3.resolv.conf')).toBe(0);
    // unit namespaces are wired through the runtime directory only
    expect(ct().test('test -e /etc/netns/nsm-nsmt-m3')).not.toBe(0);

    ct().sh('systemctl stop nsmt-m3 nsmt-m1 nsmt-m2 nsmt-vl3');
    await until('vL3 units gone', () => !/nsm-nsmt-(m1|m2|m3|vl3)/.test(netnsList()) && !cliJson('endpoints').some((e: { name: string }) => e.name === 'vm-nsmt-vl3'));
    await until('unit resolv.conf removed', () => ct().test('test -e /run/nsm-agent/dns/nsm-nsmt-m3.resolv.conf') !== 0);
    expect(hostResolv()).toEqual(resolvBefore);
  }, T);

  it('upgrade to a higher version keeps the edited agent.yaml and restarts the agent', () => {
    const pid = show('nsm-agent', 'MainPID');
    const r = ct().exec(['dpkg', '-i', `/root/pkgs/${path.basename(pkgs.deb2)}`], { timeout: 120_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(ct().sh("dpkg-query -W -f='${Version}' nsm-agent")).toBe(VERSION2);
    expect(readFileSync(ct().path('etc/nsm-agent/agent.yaml'), 'utf8')).toMatch(/name: reload-ep/);
    expect(active('nsm-agent')).toBe('active');
    expect(show('nsm-agent', 'MainPID')).not.toBe(pid);
    expect(cliJson('status').version).toBe(VERSION2);
    expect(cliJson('endpoints').map((e: { name: string }) => e.name)).toContain('reload-ep');
  }, T);

  it('dpkg -r stops it and leaves the config; dpkg -P removes everything the package made', () => {
    const rm = ct().exec(['dpkg', '-r', 'nsm-agent']);
    expect(rm.code, rm.stderr).toBe(0);
    expect(active('nsm-agent')).not.toBe('active');
    expect(ct().test('test -e /usr/lib/nsm-agent || test -e /usr/sbin/nsm-agent || test -e /lib/systemd/system/nsm-agent.service')).not.toBe(0);
    expect(readFileSync(ct().path('etc/nsm-agent/agent.yaml'), 'utf8')).toMatch(/name: reload-ep/);
    const purge = ct().exec(['dpkg', '-P', 'nsm-agent']);
    expect(purge.code, purge.stderr).toBe(0);
    for (const p of ['/etc/nsm-agent', '/var/lib/nsm-agent', '/var/cache/nsm-agent', '/run/nsm-agent', '/usr/lib/nsm-agent']) {
      expect(ct().test(`test -e ${p}`), p).not.toBe(0);
    }
    expect(ct().sh('find /etc/systemd /lib/systemd /usr/lib/systemd -name "*nsm-agent*" -o -name "nsm-connect*"').trim()).toBe('');
    expect(ct().exec(['dpkg-query', '-W', 'nsm-agent']).code).not.toBe(0);
  }, T);
});
