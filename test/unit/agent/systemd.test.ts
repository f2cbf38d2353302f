/**
 * The systemd pieces that need no root: unit file reading, the [X-NetworkServiceMesh]
 * section, the generator's drop-ins (checked with systemd-analyze where it is installed),
 * sd_notify messages and watchdog timing, configured connection ids.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { parseUnitText, findUnitFiles, templateOf, isTemplate, listServiceUnits, UnitDirListing, UnitFileError, unitSearchPath } from '../../../src/agent/systemd/unitfile';
import { collectDecl, readDecl, unitNetnsName } from '../../../src/agent/systemd/declaration';
import { checkDecl, checkSpec, unitEndpointName } from '../../../src/agent/systemd/units';
import { generate, DROP_IN } from '../../../src/agent/systemd/generator';
import { Notifier } from '../../../src/agent/systemd/notify';
import { withConnectionIds } from '../../../src/agent/reload';
import { parseConfig } from '../../../src/agent/config';
import { silentLogger } from '../../../src/core/log';
import { AgentError } from '../../../src/core/errors';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'nsmu-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function put(dir: string, rel: string, text: string): string {
  const p = path.join(dir, rel);
  mkdirSync(path.dirname(p), { recursive: true });
  writeFileSync(p, text);
  return p;
}

describe('unit files', () => {
  it('parses sections, comments, blanks around = and continuation lines', () => {
    const u = parseUnitText(
      [
        '# comment',
        '[Unit]',
        'Description = a unit ',
        '',
        '[X-NetworkServiceMesh]',
        '; another comment',
        'Connect=kernel://a/nsm-1 \\',
        '# skipped inside the continuation',
        '  kernel://b/nsm-2',
        'Provide=svc?app=x',
      ].join('\n'),
    );
    expect(u.get('Unit')).toEqual([{ key: 'Description', value: 'a unit', file: '<text>', line: 3 }]);
    const x = u.get('X-NetworkServiceMesh')!;
    expect(x.map((a) => a.key)).toEqual(['Connect', 'Provide']);
    expect(x[0]!.value).toMatch(/^kernel:\/\/a\/nsm-1\s+kernel:\/\/b\/nsm-2$/);
    expect(x[1]!.value).toBe('svc?app=x');
    expect(x[0]!.line).toBe(7);
  });

  it('rejects lines that are not assignments, with file and line', () => {
    expect(() => parseUnitText('[Unit]\nnonsense\n', 'f.service')).toThrow(/f\.service:2: expected Key=Value/);
    expect(() => parseUnitText('Key=1\n', 'f.service')).toThrow(UnitFileError);
  });

  it('names templates and instances', () => {
    expect(templateOf('foo@bar.service')).toBe('foo@.service');
    expect(templateOf('foo@.service')).toBeUndefined();
    expect(templateOf('foo.service')).toBeUndefined();
    expect(isTemplate('foo@.service')).toBe(true);
    expect(isTemplate('foo@bar.service')).toBe(false);
  });

  it('finds the fragment by priority, template fragments, drop-ins by name across dirs, and masks', () => {
    const etc = tmp();
    const lib = tmp();
    put(lib, 'a.service', '[Unit]\nDescription=lib\n');
    put(etc, 'a.service', '[Unit]\nDescription=etc\n');
    put(lib, 'a.service.d/10-x.conf', '[Unit]\nDescription=lib drop-in\n');
    put(etc, 'a.service.d/10-x.conf', '[Unit]\nDescription=etc drop-in\n');
    put(lib, 'a.service.d/05-y.conf', '[Unit]\n');
    put(lib, 'b@.service', '[Unit]\n');
    put(lib, 'b@.service.d/x.conf', '[Unit]\n');
    put(etc, 'b@one.service.d/y.conf', '[Unit]\n');
    put(lib, 'c.service', '[Unit]\n');
    symlinkSync('/dev/null', path.join(etc, 'c.service'));
    put(lib, 'd.service', '[Unit]\n');
    put(etc, 'd.service', ''); // an empty file masks too
    const sp = [etc, lib];
    // looked up name by name, and from directory listings read once (a scan over every unit)
    for (const listing of [undefined, new UnitDirListing()]) {
      const a = findUnitFiles('a.service', sp, listing);
      expect(a.fragment).toBe(path.join(etc, 'a.service'));
      expect(a.dropIns).toEqual([path.join(lib, 'a.service.d/05-y.conf'), path.join(etc, 'a.service.d/10-x.conf')]);
      const b = findUnitFiles('b@one.service', sp, listing);
      expect(b.fragment).toBe(path.join(lib, 'b@.service'));
      expect(b.dropIns.sort()).toEqual([path.join(lib, 'b@.service.d/x.conf'), path.join(etc, 'b@one.service.d/y.conf')].sort());
      expect(findUnitFiles('c.service', sp, listing).masked).toBe(true);
      expect(findUnitFiles('d.service', sp, listing).masked).toBe(true);
      expect(findUnitFiles('e.service', sp, listing)).toEqual({ unit: 'e.service', fragment: undefined, dropIns: [], masked: false });
      expect(listServiceUnits(sp, listing)).toEqual(['a.service', 'b@.service', 'b@one.service', 'c.service', 'd.service']);
    }
  });

  it('takes the search path from SYSTEMD_UNIT_PATH, an empty element meaning the defaults', () => {
    expect(unitSearchPath({ SYSTEMD_UNIT_PATH: '/x:/y' })).toEqual(['/x', '/y']);
    expect(unitSearchPath({ SYSTEMD_UNIT_PATH: '/x:' })[0]).toBe('/x');
    expect(unitSearchPath({ SYSTEMD_UNIT_PATH: '/x:' })).toContain('/etc/systemd/system');
    expect(unitSearchPath({ SYSTEMD_UNIT_PATH: '/x/:/y//z/../w/:/' })).toEqual(['/x', '/y/w', '/']);
  });
});

describe('[X-NetworkServiceMesh]', () => {
  const a = (key: string, value: string, line = 1) => ({ key, value, file: 'u.service', line });

  it('collects lists (several values per line, several lines, empty resets) and Namespace', () => {
    const d = collectDecl('u.service', [
      a('Connect', 'kernel://x/nsm-1'),
      a('Connect', ''),
      a('Connect', 'kernel://a/nsm-1 kernel://b/nsm-2'),
      a('Provide', 'svc?app=p'),
      a('AddressPool', '10.0.0.0/24, 10.0.1.0/24'),
      a('Namespace', 'host'),
    ]);
    expect(d).toMatchObject({ connect: ['kernel://a/nsm-1', 'kernel://b/nsm-2'], provide: ['svc?app=p'], addressPool: ['10.0.0.0/24', '10.0.1.0/24'], namespace: 'host' });
  });

  it('names the file and line of an unknown key or a bad Namespace', () => {
    expect(() => collectDecl('u.service', [a('Conect', 'x', 7)])).toThrow(/u\.service:7: unknown key Conect=/);
    expect(() => collectDecl('u.service', [a('Namespace', 'shared', 3)])).toThrow(/u\.service:3: Namespace= must be private or host/);
  });

  it('reads the section from the fragment and drop-ins, and nothing when there is none', () => {
    const dir = tmp();
    put(dir, 'c.service', '[Unit]\nDescription=c\n[X-NetworkServiceMesh]\nConnect=kernel://svc/nsm-1\n');
    put(dir, 'c.service.d/more.conf', '[X-NetworkServiceMesh]\nConnect=kernel://svc2/nsm-2\n');
    put(dir, 'plain.service', '[Unit]\nDescription=plain\n');
    expect(readDecl('c.service', findUnitFiles('c.service', [dir]))?.connect).toEqual(['kernel://svc/nsm-1', 'kernel://svc2/nsm-2']);
    expect(readDecl('plain.service', findUnitFiles('plain.service', [dir]))).toBeUndefined();
    // a unit without the section is not parsed, so what systemd would say of its syntax is not ours to say
    put(dir, 'odd.service', '[Unit]\nnot an assignment\n');
    expect(readDecl('odd.service', findUnitFiles('odd.service', [dir]))).toBeUndefined();
  });

  it('checks the declaration: URLs, interface names, labels, pools', () => {
    const base = { unit: 'db.service', namespace: 'private' as const, connect: [], provide: [], addressPool: [], vl3ipam: [], files: [] };
    const spec = checkDecl({ ...base, connect: ['kernel://db-replication/nsm-1?app=pg', 'other'], provide: ['db?app=pg', 'db2?tier=x'], addressPool: ['172.16.1.0/24'] });
    expect(spec).toEqual({
      unit: 'db.service',
      netns: 'nsm-db',
      connect: [
        { url: 'kernel://db-replication/nsm-1?app=pg', id: 'db.service/nsm-1', ifname: 'nsm-1' },
        { url: 'other/nsm-2', id: 'db.service/nsm-2', ifname: 'nsm-2' },
      ],
      provide: { services: ['db', 'db2'], labels: { app: 'pg', tier: 'x' }, cidr: '172.16.1.0/24' },
    });
    expect(checkDecl({ ...base, namespace: 'host' }).netns).toBe('host');
    const bad = (patch: object, re: RegExp) => {
      expect(() => checkDecl({ ...base, ...patch })).toThrow(re);
      try {
        checkDecl({ ...base, ...patch });
      } catch (err) {
        expect(err).toBeInstanceOf(AgentError);
      }
    };
    bad({ connect: ['kernel://a/nsm-1', 'kernel://b/nsm-1'] }, /interface nsm-1 is requested twice/);
    bad({ connect: ['memif://a/x'] }, /only the kernel:\/\/ mechanism/);
    bad({ connect: ['kernel://a/this-name-is-too-long'] }, /longer than 15/);
    bad({ provide: ['svc'] }, /Provide= needs AddressPool=/);
    bad({ provide: ['svc'], addressPool: ['10.0.0.1'] }, /not a CIDR prefix/);
    bad({ addressPool: ['10.0.0.0/24'] }, /AddressPool= without Provide=/);
    bad({ provide: ['a?app=1', 'b?app=2'], addressPool: ['10.0.0.0/24'] }, /label app is given two values/);
    bad({ provide: ['kernel://svc/x'], addressPool: ['10.0.0.0/24'] }, /without a scheme or interface/);
    // a vL3 endpoint: VL3IPAM= instead of AddressPool=, one service, URLs checked
    expect(checkDecl({ ...base, provide: ['app?x=1'], vl3ipam: ['tcp://10.0.0.1:5006'] }).provide).toEqual({
      services: ['app'],
      labels: { x: '1' },
      cidr: '',
      vl3ipam: ['tcp://10.0.0.1:5006'],
    });
    bad({ provide: ['app'], vl3ipam: ['tcp://10.0.0.1:5006'], addressPool: ['10.0.0.0/24'] }, /exclude each other/);
    bad({ provide: ['a', 'b'], vl3ipam: ['tcp://10.0.0.1:5006'] }, /exactly one service/);
    bad({ provide: ['app'], vl3ipam: ['http://x'] }, /not a vl3-ipam URL/);
    bad({ vl3ipam: ['tcp://10.0.0.1:5006'] }, /VL3IPAM= without Provide=/);
  });

  it('hands DNS= and DNSSearch= to the endpoint as one DNS config', () => {
    const base = { unit: 'dns.service', namespace: 'private' as const, connect: [], provide: ['app'], addressPool: ['172.16.1.0/24'], vl3ipam: [], files: [] };
    const decl = collectDecl('dns.service', [
      { key: 'DNS', value: '172.16.1.100, 2001:db8::53', file: 'f', line: 1 },
      { key: 'DNSSearch', value: 'my.coredns.service', file: 'f', line: 2 },
    ]);
    expect([decl.dns, decl.dnsSearch]).toEqual([['172.16.1.100', '2001:db8::53'], ['my.coredns.service']]);
    expect(checkDecl({ ...base, dns: decl.dns, dnsSearch: decl.dnsSearch }).provide?.dns).toEqual({
      servers: ['172.16.1.100', '2001:db8::53'],
      searchDomains: ['my.coredns.service'],
    });
    expect(checkDecl(base).provide?.dns).toBeUndefined();
    expect(() => checkDecl({ ...base, dns: ['dns.example'] })).toThrow(/DNS=: "dns\.example" is not an IPv4 or IPv6 address/);
    expect(() => checkDecl({ ...base, dns: ['10.0.0.1'], dnsSearch: ['bad_domain!'] })).toThrow(/DNSSearch=: "bad_domain!" is not a domain name/);
    expect(() => checkDecl({ ...base, dnsSearch: ['x.y'] })).toThrow(/DNSSearch= needs DNS=/);
    expect(() => checkDecl({ ...base, provide: [], addressPool: [], dns: ['10.0.0.1'] })).toThrow(/DNS= without Provide=/);
    // what the helper sends over the systemd socket is checked the same way
    const spec = checkDecl({ ...base, dns: ['10.0.0.1'] });
    expect(checkSpec(JSON.parse(JSON.stringify(spec))).provide?.dns).toEqual({ servers: ['10.0.0.1'], searchDomains: [] });
    expect(() => checkSpec({ ...spec, provide: { ...spec.provide, dns: { servers: ['nope'] } } })).toThrow(/not an IPv4 or IPv6 address/);
  });

  it('reads VL3IPAM= as a list', () => {
    const decl = collectDecl('v.service', [
      { key: 'Provide', value: 'app', file: 'f', line: 1 },
      { key: 'VL3IPAM', value: 'tcp://10.0.0.1:5006, tcp://[2001:db8::1]:5006', file: 'f', line: 2 },
    ]);
    expect(decl.vl3ipam).toEqual(['tcp://10.0.0.1:5006', 'tcp://[2001:db8::1]:5006']);
  });

  it('names namespaces and endpoints after the unit', () => {
    expect(unitNetnsName('web@blue.service')).toBe('nsm-web@blue');
    expect(unitEndpointName('host-a', 'Web_App@Blue.service')).toBe('host-a-web-app-blue');
  });
});

describe('generator', () => {
  it('writes drop-ins for units with the section (templates with specifiers only), none for others', () => {
    const units = tmp();
    const out = tmp();
    put(units, 'consumer.service', '[Unit]\nAfter=provider.service network.target\n[X-NetworkServiceMesh]\nConnect=kernel://svc/nsm-1\n[Service]\nExecStart=/bin/true\n');
    put(units, 'hostnet.service', '[X-NetworkServiceMesh]\nNamespace=host\nConnect=kernel://svc/nsm-1\n[Service]\nExecStart=/bin/true\n');
    put(units, 'tmpl@.service', '[X-NetworkServiceMesh]\nConnect=kernel://svc/nsm-1\n[Service]\nExecStart=/bin/true\n');
    put(units, 'broken.service', '[X-NetworkServiceMesh]\nConect=x\n[Service]\nExecStart=/bin/true\n');
    put(units, 'plain.service', '[Service]\nExecStart=/bin/true\n');
    put(units, 'viadropin.service', '[Service]\nExecStart=/bin/true\n');
    put(units, 'viadropin.service.d/nsm.conf', '[X-NetworkServiceMesh]\nConnect=kernel://svc/nsm-1\n');
    put(units, 'nsm-agent.service', '[X-NetworkServiceMesh]\n');
    const res = generate(out, [units]);
    expect(res.map((r) => r.unit).sort()).toEqual(['broken.service', 'consumer.service', 'hostnet.service', 'tmpl@.service', 'viadropin.service']);
    expect(res.find((r) => r.unit === 'broken.service')?.error).toMatch(/unknown key Conect=/);
    const consumer = readFileSync(path.join(out, 'consumer.service.d', DROP_IN), 'utf8');
    expect(consumer).toMatch(/^Requires=nsm-connect@%N\.service$/m);
    expect(consumer).toMatch(/^After=nsm-connect@%N\.service$/m);
    expect(consumer).toMatch(/^NetworkNamespacePath=\/run\/netns\/nsm-%N$/m);
    // the agent's per-unit resolv.conf over the unit's own, the host's file when there is none
    expect(consumer).toMatch(/^BindReadOnlyPaths=-\/run\/nsm-agent\/dns\/nsm-%N\.resolv\.conf:\/etc\/resolv\.conf$/m);
    const helper = readFileSync(path.join(out, 'nsm-connect@consumer.service.d', DROP_IN), 'utf8');
    expect(helper).toMatch(/^PartOf=consumer\.service$/m);
    expect(helper).toMatch(/^After=provider\.service network\.target$/m);
    expect(readFileSync(path.join(out, 'hostnet.service.d', DROP_IN), 'utf8')).not.toMatch(/NetworkNamespacePath|BindReadOnlyPaths|resolv\.conf/);
    expect(existsSync(path.join(out, 'tmpl@.service.d', DROP_IN))).toBe(true);
    expect(existsSync(path.join(out, 'nsm-connect@tmpl@.service.d'))).toBe(false);
    expect(existsSync(path.join(out, 'plain.service.d'))).toBe(false);
    expect(existsSync(path.join(out, 'nsm-agent.service.d'))).toBe(false);
    // no unit is on demand: the root helper may start none
    expect(readFileSync(path.join(out, 'nsm-ondemand@.service.d', DROP_IN), 'utf8')).toMatch(/^Environment="NSM_ONDEMAND_UNITS="$/m);
  });

  it('names the OnDemand=yes units, and only them, in the drop-in of nsm-ondemand@.service', () => {
    const units = tmp();
    const out = tmp();
    put(units, 'od.service', '[X-NetworkServiceMesh]\nProvide=svc\nAddressPool=10.0.0.0/29\nOnDemand=yes\n[Service]\nExecStart=/bin/true\n');
    put(units, 'od2.service', '[X-NetworkServiceMesh]\nProvide=svc2\nAddressPool=10.0.1.0/29\nOnDemand=true\n[Service]\nExecStart=/bin/true\n');
    put(units, 'plain.service', '[X-NetworkServiceMesh]\nProvide=svc3\nAddressPool=10.0.2.0/29\n[Service]\nExecStart=/bin/true\n');
    put(units, 'noprov.service', '[X-NetworkServiceMesh]\nConnect=kernel://svc/nsm-1\nOnDemand=yes\n[Service]\nExecStart=/bin/true\n');
    generate(out, [units]);
    expect(readFileSync(path.join(out, 'nsm-ondemand@.service.d', DROP_IN), 'utf8')).toMatch(/^Environment="NSM_ONDEMAND_UNITS=od\.service od2\.service"$/m);
    // an on-demand unit gets the same drop-ins as any other, and nothing that pulls it in
    expect(readFileSync(path.join(out, 'od.service.d', DROP_IN), 'utf8')).not.toMatch(/Wants|WantedBy/);
  });

  const analyze = spawnSync('sh', ['-c', 'command -v systemd-analyze'], { encoding: 'utf8' }).status === 0;
  it.skipIf(!analyze)('its drop-ins and the packaged units pass systemd-analyze verify', () => {
    const units = tmp();
    const out = tmp();
    const root = path.resolve(__dirname, '../../..');
    put(units, 'consumer.service', '[Unit]\nDescription=c\n[X-NetworkServiceMesh]\nConnect=kernel://svc/nsm-1\n[Service]\nExecStart=/bin/true\n');
    generate(out, [units]);
    // The packaged units with the launcher path pointed at something that exists here.
    for (const f of ['nsm-agent.service', 'nsm-connect@.service', 'nsm-ondemand.socket', 'nsm-ondemand@.service']) {
      put(units, f, readFileSync(path.join(root, 'packaging/systemd', f), 'utf8').replace(/\/usr\/sbin\/nsm-agent/g, '/bin/true'));
    }
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', 'consumer.service', 'nsm-connect@consumer.service', 'nsm-agent.service', 'nsm-ondemand.socket', 'nsm-ondemand@x.service'], {
      encoding: 'utf8',
      env: { ...process.env, SYSTEMD_UNIT_PATH: `${out}:${units}:` },
    });
    const ours = (r.stderr ?? '').split('\n').filter((l) => /consumer|nsm-/.test(l));
    expect(ours).toEqual([]);
    expect(r.status).toBe(0);
  });
});

describe('sd_notify', () => {
  it('sends READY with STATUS, RELOADING, STOPPING, and STATUS only when it changes', () => {
    const sent: string[] = [];
    const n = new Notifier(silentLogger, (s) => (sent.push(s), true));
    n.status('starting');
    n.status('starting');
    n.ready('serving, 0 endpoints');
    n.reloading();
    n.stopping();
    expect(sent[0]).toBe('STATUS=starting');
    expect(sent[1]).toMatch(/^READY=1\nSTATUS=serving, 0 endpoints\nMAINPID=\d+$/);
    expect(sent[2]).toMatch(/^RELOADING=1\n/);
    expect(sent[3]).toMatch(/^STOPPING=1\n/);
    expect(sent).toHaveLength(4);
  });

  it('pings WATCHDOG=1 at half WATCHDOG_USEC, only for its own pid', async () => {
    const sent: string[] = [];
    const n = new Notifier(silentLogger, (s) => (sent.push(s), true));
    expect(n.startWatchdog({})).toBe(0);
    expect(n.startWatchdog({ WATCHDOG_USEC: '200000', WATCHDOG_PID: String(process.pid + 1) })).toBe(0);
    expect(n.startWatchdog({ WATCHDOG_USEC: '200000', WATCHDOG_PID: String(process.pid) })).toBe(100);
    await new Promise((r) => setTimeout(r, 350));
    n.stopWatchdog();
    const pings = sent.filter((s) => s === 'WATCHDOG=1').length;
    expect(pings).toBeGreaterThanOrEqual(3);
    await new Promise((r) => setTimeout(r, 150));
    expect(sent.filter((s) => s === 'WATCHDOG=1').length).toBe(pings);
  });

  it('a failing send is logged, never thrown', () => {
    const n = new Notifier(silentLogger, () => {
      throw new Error('EPERM');
    });
    expect(() => n.ready('x')).not.toThrow();
  });
});

describe('configured connection ids', () => {
  it('are stable per url and netns, and kept when given', () => {
    const cfg = () =>
      parseConfig({
        name: 'h',
        connections: [{ url: 'kernel://a/nsm-1' }, { url: 'kernel://a/nsm-1', netns: 'x' }, { url: 'kernel://b/nsm-2', id: 'mine' }],
      });
    const a = withConnectionIds(cfg()).connections.map((c) => c.id);
    const b = withConnectionIds(cfg()).connections.map((c) => c.id);
    expect(a).toEqual(b);
    expect(a[0]).toMatch(/^h-cfg-[0-9a-f]{10}$/);
    expect(a[0]).not.toBe(a[1]);
    expect(a[2]).toBe('mine');
  });
});

describe('unit specs received on the systemd socket', () => {
  const good = () =>
    checkDecl({ unit: 'db.service', namespace: 'private', connect: ['kernel://repl/nsm-1?app=pg'], provide: ['db?tier=a'], addressPool: ['10.1.0.0/30'], vl3ipam: [], files: [] });

  it('accepts what checkDecl made, as it is', () => {
    const spec = good();
    expect(checkSpec(JSON.parse(JSON.stringify(spec)))).toEqual(spec);
  });

  it.each([
    ['a unit name that is not one', (s: any) => (s.unit = '../x')],
    ['a namespace other than the unit`s', (s: any) => (s.netns = '../../etc')],
    ['an id that is not UNIT/IFNAME', (s: any) => (s.connect[0].id = 'other')],
    ['an interface name that is too long', (s: any) => ((s.connect[0].url = 'kernel://repl/much-too-long-name'), (s.connect[0].ifname = 'much-too-long-name'))],
    ['a pool that is not a prefix', (s: any) => (s.provide.cidr = 'nope')],
    ['a label key with a space', (s: any) => (s.provide.labels = { 'a b': 'c' })],
    ['no connect list', (s: any) => (s.connect = 'x')],
    ['nothing', (s: any) => Object.keys(s).forEach((k) => delete s[k])],
  ])('refuses %s with INVALID_ARGUMENT', (_what, mutate) => {
    const s = JSON.parse(JSON.stringify(good()));
    mutate(s);
    expect(() => checkSpec(s)).toThrow(expect.objectContaining({ code: expect.stringMatching(/^INVALID_/) }));
  });
});

describe('[X-NetworkServiceMesh] Passthrough=', () => {
  const base = { unit: 'fw.service', namespace: 'private' as const, connect: [], provide: [], addressPool: [], vl3ipam: [], files: [] };

  it('collects Passthrough= and makes a passthrough endpoint with its labels, without a pool', () => {
    const d = collectDecl('fw.service', [{ key: 'Passthrough', value: 'secure-intranet?app=firewall', file: 'fw.service', line: 3 }]);
    expect(d.passthrough).toEqual(['secure-intranet?app=firewall']);
    expect(checkDecl(d).provide).toEqual({ services: ['secure-intranet'], labels: { app: 'firewall' }, cidr: '', passthrough: true });
  });

  it('refuses it beside Provide=, AddressPool=, VL3IPAM= or DNS=', () => {
    const p = { passthrough: ['s?app=fw'] };
    expect(() => checkDecl({ ...base, ...p, provide: ['s'], addressPool: ['10.0.0.0/24'] })).toThrow(/Provide= and Passthrough= exclude each other/);
    expect(() => checkDecl({ ...base, ...p, addressPool: ['10.0.0.0/24'] })).toThrow(/assigns no addresses: remove AddressPool=/);
    expect(() => checkDecl({ ...base, ...p, vl3ipam: ['tcp://10.0.0.1:5006'] })).toThrow(/assigns no addresses: remove VL3IPAM=/);
    expect(() => checkDecl({ ...base, ...p, dns: ['10.0.0.53'] })).toThrow(/DNS= without Provide=/);
    expect(() => checkDecl({ ...base, passthrough: ['kernel://s/x'] })).toThrow(/Passthrough=kernel:\/\/s\/x: expected service\?label=value/);
  });

  it('takes a passthrough spec from the socket as checkDecl makes it', () => {
    const spec = checkDecl({ ...base, passthrough: ['s?app=fw'] });
    expect(checkSpec(JSON.parse(JSON.stringify(spec)))).toEqual(spec);
  });
});
