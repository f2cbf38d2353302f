/**
 * DNS of the host namespace under a real systemd with systemd-resolved: the deb installed into
 * the booted Debian 12 of test/system/lib/container.ts (which has systemd-resolved, so its
 * /etc/resolv.conf is resolved's stub), an endpoint whose DNS config names a dnsmasq in the
 * endpoint's namespace, and a `netns: host` connection to it:
 *
 * - the connection's interface gets the server and `~domain` in resolved; `getent hosts` and
 *   `resolvectl query` on the host resolve the mesh name; /etc/resolv.conf stays byte for byte;
 * - an agent stop reverts the link, a start wires it again; disconnect leaves no link DNS;
 * - with resolved stopped, status says host DNS is not wired and why, the agent keeps serving,
 *   and the link is wired once resolved is back;
 * - the packaged unit may write /etc/netns/NAME/resolv.conf (a root-owned one kept and put
 *   back).
 *
 * Needs root (mounts, nspawn); skipped otherwise.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Container, missingTools, rootfs } from './lib/container';
import { packages, Packages } from './lib/packages';

const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn('test/system/host-dns: skipped, needs root (overlay mounts, systemd-nspawn)');
const run = isRoot ? describe : describe.skip;

const T = 240_000;

async function until(what: string, cond: () => boolean, ms = 20_000, step = 200, detail: () => string = () => ''): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, step));
  }
  if (!cond()) throw new Error(`timed out waiting for: ${what}\n${detail()}`);
}

/** Two endpoints in nsmt-ep, each handing out the dnsmasq there (on its own address) for mesh.test. */
const ENDPOINTS = `endpoints:
  - name: dns-ep
    services: [dns-svc]
    cidr: 172.16.90.100/31
    netns: nsmt-ep
    dns: [{servers: [172.16.90.100], searchDomains: [mesh.test]}]
  - name: dns-ep2
    services: [dns-svc2]
    cidr: 172.16.91.100/31
    netns: nsmt-ep
    dns: [{servers: [172.16.91.100], searchDomains: [mesh.test]}]
`;

run('host DNS through systemd-resolved (system test)', () => {
  let pkgs: Packages;
  let c: Container | undefined;

  const ct = (): Container => {
    if (!c) throw new Error('the container is not running (see the failure of the first test)');
    return c;
  };
  const cli = (...args: string[]) => ct().exec(['nsm-agent', ...args]);
  const cliJson = (...args: string[]) => {
    const r = cli(...args, '--json');
    if (r.code !== 0) throw new Error(`nsm-agent ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  const hostDns = () => cliJson('status').hostDns as { connectionId: string; interface: string; servers: string[]; domains: string[]; wired: boolean; reason: string }[];
  const journal = () => ct().exec(['journalctl', '-u', 'nsm-agent', '--no-pager', '-n', '60']).stdout;
  // the host's resolv.conf, as programs read it, and the symlink itself
  const hostResolv = () => ct().exec(['sh', '-c', 'readlink /etc/resolv.conf; cat /etc/resolv.conf; stat -L -c "%i %s %Y" /etc/resolv.conf']).stdout;
  const linkDns = (ifname: string) => ct().exec(['resolvectl', 'dns', ifname]);
  const allLinkDns = () => ct().exec(['resolvectl', 'dns']).stdout;
  let connId = '';
  /** What a failed wait shows: host DNS in status, the agent's last lines. */
  const why = () => `${cli('status').stdout}\n${journal()}`;

  beforeAll(async () => {
    const missing = missingTools();
    if (missing.length) throw new Error(`the system test needs ${missing.join(', ')} (.ci/run installs them)`);
    const lower = rootfs((m) => console.log(m));
    pkgs = packages();
    c = await Container.boot(lower);
    mkdirSync(c.path('root/pkgs'), { recursive: true });
    copyFileSync(pkgs.deb, c.path(`root/pkgs/${path.basename(pkgs.deb)}`));
    const inst = c.exec(['dpkg', '-i', `/root/pkgs/${path.basename(pkgs.deb)}`], { timeout: 120_000 });
    if (inst.code !== 0) throw new Error(`dpkg -i: ${inst.stdout}${inst.stderr}`);
    // the endpoints' namespace, with a dnsmasq answering for mesh.test on every address it gets
    c.sh('ip netns add nsmt-ep && ip -n nsmt-ep link set lo up');
    c.sh(
      'systemd-run --unit nsmt-dnsmasq ip netns exec nsmt-ep dnsmasq -k -C /dev/null --no-resolv --no-hosts --pid-file= ' +
        '--host-record=web.mesh.test,10.99.0.7 --host-record=db.mesh.test,10.99.0.8',
    );
    const conf = c.path('etc/nsm-agent/agent.yaml');
    writeFileSync(conf, readFileSync(conf, 'utf8').replace(/^endpoints: \[\]$/m, ENDPOINTS));
    c.sh('systemctl restart nsm-agent');
  }, 900_000);

  afterAll(async () => {
    if (c) {
      await c.stop();
      c = undefined;
    }
    if (pkgs?.own) rmSync(pkgs.dir, { recursive: true, force: true });
  }, 60_000);

  it('a netns host connection: resolved gets the endpoint\'s server and ~domain on its link; the host resolves mesh names; /etc/resolv.conf untouched', async () => {
    expect(ct().exec(['systemctl', 'is-active', 'systemd-resolved']).stdout.trim()).toBe('active');
    const before = hostResolv();
    expect(before).toMatch(/^\.\.\/run\/systemd\/resolve\/stub-resolv\.conf\n/);
    // the mesh name is unknown to the host before the connection
    expect(ct().test('getent hosts web.mesh.test')).not.toBe(0);

    const conn = cliJson('connect', 'kernel://dns-svc/nsm-dns');
    connId = conn.id;
    expect(conn).toMatchObject({ state: 'UP', interface: 'nsm-dns' });
    // the package's polkit rule lets the agent's user set link DNS (resolved asks polkit)
    expect(ct().test('test -f /usr/share/polkit-1/rules.d/60-nsm-agent.rules')).toBe(0);
    await until('host DNS wired', () => hostDns()[0]?.wired === true, 20_000, 200, why);
    expect(hostDns()).toEqual([{ connectionId: connId, interface: 'nsm-dns', servers: ['172.16.90.100'], domains: ['mesh.test'], wired: true, reason: '' }]);
    expect(linkDns('nsm-dns').stdout).toMatch(/172\.16\.90\.100/);
    expect(ct().sh('resolvectl domain nsm-dns')).toMatch(/~mesh\.test/);
    expect(ct().sh('resolvectl default-route nsm-dns')).toMatch(/no/);

    // through resolved's stub (/etc/resolv.conf) and through resolved's own API
    expect(ct().sh('getent hosts web.mesh.test')).toMatch(/^10\.99\.0\.7\s+web\.mesh\.test/);
    const q = ct().sh('resolvectl query db.mesh.test');
    expect(q).toMatch(/10\.99\.0\.8/);
    expect(q).toMatch(/link: nsm-dns/);

    const text = cli('status').stdout;
    expect(text).toContain('host DNS:  nsm-dns: 172.16.90.100 ~mesh.test (systemd-resolved)');
    expect(journal()).toMatch(/host DNS wired through systemd-resolved/);
    expect(hostResolv()).toBe(before);
  }, T);

  it('an agent stop reverts the link, a start wires it again (held connection)', async () => {
    ct().sh('systemctl stop nsm-agent');
    // the interface stays (KillMode=process, no cleanup), its DNS does not
    expect(ct().test('ip link show dev nsm-dns')).toBe(0);
    expect(linkDns('nsm-dns').stdout).not.toMatch(/172\.16\.90\.100/);
    ct().sh('systemctl start nsm-agent');
    await until('host DNS wired again', () => hostDns()[0]?.wired === true && /172\.16\.90\.100/.test(linkDns('nsm-dns').stdout), 30_000, 200, why);
    expect(ct().sh('getent hosts web.mesh.test')).toMatch(/^10\.99\.0\.7\s/);
  }, T);

  it('a crash leaves the link DNS; the next start takes it over, and disconnect removes it', async () => {
    const pid = ct().exec(['systemctl', 'show', '-p', 'MainPID', '--value', 'nsm-agent']).stdout.trim();
    ct().sh('systemctl kill -s KILL nsm-agent');
    await until('agent restarted', () => {
      const now = ct().exec(['systemctl', 'show', '-p', 'MainPID', '--value', 'nsm-agent']).stdout.trim();
      return now !== pid && now !== '0' && ct().exec(['systemctl', 'is-active', 'nsm-agent']).stdout.trim() === 'active';
    }, 30_000);
    await until('host DNS wired after the crash', () => hostDns()[0]?.wired === true, 30_000, 200, why);
    expect(linkDns('nsm-dns').stdout).toMatch(/172\.16\.90\.100/);

    const before = hostResolv();
    const r = cli('disconnect', connId);
    expect(r.code, r.stderr).toBe(0);
    await until('interface gone', () => ct().test('ip link show dev nsm-dns') !== 0);
    expect(allLinkDns()).not.toMatch(/172\.16\.90\.100/);
    expect(ct().test('getent hosts web.mesh.test')).not.toBe(0);
    expect(hostDns()).toEqual([]);
    expect(ct().test('test -e /run/nsm-agent/dns/host-links.json')).not.toBe(0);
    expect(hostResolv()).toBe(before);
  }, T);

  it('without systemd-resolved: status and log say host DNS is not wired and why; the agent serves on; wired once resolved is back', async () => {
    ct().sh('systemctl stop systemd-resolved');
    const conn = cliJson('connect', 'kernel://dns-svc/nsm-dns');
    await until('not wired reported', () => !!hostDns()[0]?.reason, 20_000, 200, why);
    const [h] = hostDns();
    expect(h).toMatchObject({ connectionId: conn.id, interface: 'nsm-dns', wired: false });
    expect(h!.reason).toMatch(/resolved not running/);
    const text = cli('status').stdout;
    expect(text).toContain('host DNS:  nsm-dns: 172.16.90.100 ~mesh.test NOT WIRED');
    expect(text).toMatch(/^ {4}systemd-resolved \S+: resolved not running/m);
    expect(journal()).toMatch(/host DNS not wired.*resolved not running/);
    // the agent did not start resolved, and serves on: the connection is up and carries traffic
    expect(ct().exec(['systemctl', 'is-active', 'systemd-resolved']).stdout.trim()).not.toBe('active');
    expect(cliJson('status').connections.find((x: { id: string }) => x.id === conn.id)?.state).toBe('UP');
    expect(ct().test('ping -c1 -W2 172.16.90.100')).toBe(0);

    // tried again (every 30 s): wired once resolved runs
    ct().sh('systemctl start systemd-resolved');
    await until('wired after resolved came back', () => hostDns()[0]?.wired === true, 45_000, 1_000, why);
    expect(ct().sh('getent hosts web.mesh.test')).toMatch(/^10\.99\.0\.7\s/);
    expect(cli('disconnect', conn.id).code).toBe(0);
    await until('link DNS gone', () => !/172\.16\.90\.100/.test(allLinkDns()));
  }, T);

  it('the packaged unit writes /etc/netns/NAME/resolv.conf, keeping a root-owned original and putting it back', async () => {
    const original = 'nameserver 192.0.2.1\noptions ndots:2\n';
    ct().sh(`ip netns add nsmt-app && mkdir -p /etc/netns/nsmt-app && printf '${original.replace(/\n/g, '\\n')}' > /etc/netns/nsmt-app/resolv.conf`);
    expect(ct().sh('stat -c "%U %a" /etc/netns/nsmt-app /etc/netns/nsmt-app/resolv.conf')).toBe('root 755\nroot 644\n');
    const conn = cliJson('connect', 'kernel://dns-svc2/nsm-2', '--netns', 'nsmt-app');
    await until('namespace resolv.conf written', () => ct().test('grep -q "^nameserver 127.0.0.1" /etc/netns/nsmt-app/resolv.conf') === 0);
    expect(ct().sh('stat -c "%a" /etc/netns/nsmt-app/resolv.conf').trim()).toBe('644');
    // a user other than root and the agent's reads it inside the namespace and resolves
    expect(ct().sh('ip netns exec nsmt-app setpriv --reuid=nobody --regid=nogroup --clear-groups getent hosts web.mesh.test')).toMatch(/^10\.99\.0\.7\s/);
    expect(journal()).not.toMatch(/namespace DNS not applied/);
    expect(cli('disconnect', conn.id).code).toBe(0);
    await until('original back', () => ct().exec(['cat', '/etc/netns/nsmt-app/resolv.conf']).stdout === original);
    expect(ct().test('test -e /etc/netns/nsmt-app/resolv.conf.nsm-agent-original')).not.toBe(0);
    ct().sh('ip netns del nsmt-app && rm -r /etc/netns/nsmt-app');
  }, T);
});
