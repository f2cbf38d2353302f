/**
 * End to end, as root with real namespaces and real DNS servers (Debian's dnsmasq): an
 * endpoint hands its clients a DNS config naming the dnsmasq in its namespace; a client
 * namespace (`connect --netns`) then resolves and pings that name through the agent's
 * resolver, still resolves what its own resolver knows, and gets its resolv.conf back, byte
 * for byte, when the connection goes. Bad packets and dead servers do not stop the resolver.
 * A systemd unit's namespace gets its file in the agent's runtime directory instead.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { startAgent, stopAll, type RunningAgent } from '../harness/agent.mjs';
import { isRoot, sh, uniq, until } from '../harness/exec.mjs';
import { addNetns, delNetns, ping } from '../harness/netns.mjs';

const haveDnsmasq = sh('sh', ['-c', 'command -v dnsmasq']).code === 0;
const run = isRoot && haveDnsmasq ? describe : describe.skip;

/** dnsmasq in `netns`, on `address` only, knowing `records` (name -> IPv4), authoritative for `zone` and nx.test (empty). */
function dnsmasq(netns: string, address: string, zone: string, records: Record<string, string>, extra: string[] = []): ChildProcess {
  const args = ['netns', 'exec', netns, 'dnsmasq', '--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--user=root', '--pid-file=', '--bind-interfaces', `--listen-address=${address}`, `--local=/${zone}/`, '--local=/nx.test/'];
  for (const [name, ip] of Object.entries(records)) args.push(`--host-record=${name},${ip}`);
  args.push(...extra);
  // `ip netns exec` execs dnsmasq in place: the child's PID is dnsmasq's.
  return spawn('ip', args, { stdio: 'ignore' });
}

/** Resolves `name` in `netns` as a program there would (glibc, /etc/netns/<netns>/resolv.conf). */
function getent(netns: string, name: string): string {
  const r = sh('ip', ['netns', 'exec', netns, 'getent', 'hosts', name]);
  return r.code === 0 ? r.stdout.trim().split(/\s+/)[0]! : '';
}

/** Runs python3 in `netns` (raw DNS packets); returns its stdout. */
function py(netns: string, code: string): string {
  const r = sh('ip', ['netns', 'exec', netns, 'python3', '-c', code]);
  if (r.code !== 0) throw new Error(`python3 in ${netns} failed: ${r.stderr}`);
  return r.stdout.trim();
}

const QUERY_PY = `
import socket, struct, sys, time
def query(name, qtype=1, server=('127.0.0.1', 53), timeout=6):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(timeout)
    qn = b''.join(bytes([len(p)]) + p.encode() for p in name.split('.')) + b'\\0'
    t0 = time.time()
    s.sendto(struct.pack('>HHHHHH', 0x1234, 0x100, 1, 0, 0, 0) + qn + struct.pack('>HH', qtype, 1), server)
    d = s.recv(4096)
    return d[3] & 15, struct.unpack('>H', d[6:8])[0], time.time() - t0
`;

run('DNS for client namespaces', () => {
  const nse = uniq('dnse');
  const nsc = uniq('dnsc');
  const nsDead = uniq('dnsd');
  const daemons: ChildProcess[] = [];
  const madeDirs: string[] = [];
  const originalText = '# the namespace\'s own resolver\nnameserver 127.0.0.2\n\noptions ndots:1\n';
  let agent: RunningAgent;

  beforeAll(async () => {
    for (const ns of [nse, nsc, nsDead]) addNetns(ns);
    for (const ns of [nsc, nsDead]) if (existsSync(`/etc/netns/${ns}`)) throw new Error(`/etc/netns/${ns} exists already`);
    // the client namespace's own resolver: a dnsmasq on 127.0.0.2 there, named by its resolv.conf
    mkdirSync(`/etc/netns/${nsc}`, { recursive: true });
    madeDirs.push(`/etc/netns/${nsc}`);
    writeFileSync(`/etc/netns/${nsc}/resolv.conf`, originalText);
    daemons.push(dnsmasq(nsc, '127.0.0.2', 'default.test', { 'only.default.test': '192.0.2.77' }));
    expect(await until(() => getent(nsc, 'only.default.test') === '192.0.2.77', 5_000)).toBe(true);
    agent = await startAgent({
      name: 'host-a',
      endpoints: [
        { name: 'dns-nse', services: ['dns-svc'], cidr: '172.16.1.100/31', netns: nse, dns: [{ servers: ['172.16.1.100'], searchDomains: ['my.coredns.service'] }] },
        // a DNS server that is never reachable
        { name: 'dead-dns-nse', services: ['dead-dns'], cidr: '172.16.2.100/31', netns: nse, dns: [{ servers: ['172.16.2.99'] }] },
      ],
    });
  }, 60_000);

  afterAll(async () => {
    for (const d of daemons) d.kill('SIGTERM');
    await agent?.stop();
    await stopAll();
    for (const ns of [nse, nsc, nsDead]) delNetns(ns);
    for (const d of madeDirs) rmSync(d, { recursive: true, force: true });
  });

  it('resolves and pings the endpoint\'s names, keeps the namespace\'s own names, restores resolv.conf', async () => {
    const c = agent.cliJson(['connect', 'kernel://dns-svc/nsm-1', '--netns', nsc, '--id', 'dns-1']);
    expect(c.dstIps).toEqual(['172.16.1.100/32']);
    // the endpoint's DNS server, on the endpoint's address of the vWire
    // and a name with more addresses than a 512-byte UDP answer holds
    const big = Array.from({ length: 60 }, (_, i) => `--host-record=big.my.coredns.service,10.9.${i}.1`);
    daemons.push(dnsmasq(nse, '172.16.1.100', 'my.coredns.service', { 'my.coredns.service': '172.16.1.100' }, big));
    const wired = readFileSync(`/etc/netns/${nsc}/resolv.conf`, 'utf8');
    expect(wired).toMatch(/^# nsm-agent resolver/);
    expect(wired).toContain('\nnameserver 127.0.0.1\n');
    expect(wired).toContain('search my.coredns.service');
    expect(await until(() => getent(nsc, 'my.coredns.service') === '172.16.1.100', 5_000)).toBe(true);
    expect(ping(nsc, 'my.coredns.service')).toBe(true);
    // the namespace's own resolver still answers, through the agent's
    expect(getent(nsc, 'only.default.test')).toBe('192.0.2.77');
    // a name every server says does not exist: NXDOMAIN (not SERVFAIL), though the search
    // domain's server refuses the name under its domain
    expect(py(nsc, `${QUERY_PY}\nprint(query('nothing.nx.test')[0])`)).toBe('3');
    expect(getent(nsc, 'nothing.nx.test')).toBe('');
    // over TCP too
    const tcp = py(
      nsc,
      `import socket, struct
s = socket.create_connection(('127.0.0.1', 53), timeout=5)
qn = b''.join(bytes([len(p)]) + p.encode() for p in 'my.coredns.service'.split('.')) + b'\\0'
m = struct.pack('>HHHHHH', 7, 0x100, 1, 0, 0, 0) + qn + struct.pack('>HH', 1, 1)
s.sendall(struct.pack('>H', len(m)) + m)
n = struct.unpack('>H', s.recv(2))[0]
d = b''
while len(d) < n: d += s.recv(n - len(d))
print(d[3] & 15, socket.inet_ntoa(d[-4:]))`,
    );
    expect(tcp).toBe('0 172.16.1.100');
    // the big one: truncated (TC) to a plain UDP query; whole over TCP, the agent having asked
    // the server over TCP in turn
    const bigAnswers = py(
      nsc,
      `import socket, struct
qn = b''.join(bytes([len(p)]) + p.encode() for p in 'big.my.coredns.service'.split('.')) + b'\\0'
m = struct.pack('>HHHHHH', 9, 0x100, 1, 0, 0, 0) + qn + struct.pack('>HH', 1, 1)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(5); u.sendto(m, ('127.0.0.1', 53))
d = u.recv(4096)
print(len(d) <= 512, bool(d[2] & 2))
s = socket.create_connection(('127.0.0.1', 53), timeout=5)
s.sendall(struct.pack('>H', len(m)) + m)
n = struct.unpack('>H', s.recv(2))[0]
d = b''
while len(d) < n: d += s.recv(n - len(d))
print(d[3] & 15, struct.unpack('>H', d[6:8])[0], bool(d[2] & 2))`,
    );
    expect(bigAnswers.split('\n')).toEqual(['True True', '0 60 False']);

    // a second connection with DNS into the namespace, its server dead: names still resolve,
    // and the resolver stays until the last connection with DNS goes
    agent.cliJson(['connect', 'kernel://dead-dns/nsm-2', '--netns', nsc, '--id', 'dns-1b']);
    expect(getent(nsc, 'my.coredns.service')).toBe('172.16.1.100');
    expect(getent(nsc, 'only.default.test')).toBe('192.0.2.77');
    expect(agent.cli(['disconnect', 'dns-1']).code).toBe(0);
    await new Promise((r) => setTimeout(r, 300));
    expect(readFileSync(`/etc/netns/${nsc}/resolv.conf`, 'utf8')).toMatch(/^# nsm-agent resolver/);
    expect(getent(nsc, 'only.default.test')).toBe('192.0.2.77');
    expect(agent.cli(['disconnect', 'dns-1b']).code).toBe(0);
    expect(await until(() => readFileSync(`/etc/netns/${nsc}/resolv.conf`, 'utf8') === originalText, 5_000)).toBe(true);
    expect(existsSync(`/etc/netns/${nsc}/resolv.conf.nsm-agent-original`)).toBe(false);
    expect(getent(nsc, 'only.default.test')).toBe('192.0.2.77');
    expect(getent(nsc, 'my.coredns.service')).toBe('');
  }, 60_000);

  it('survives malformed, oversized and truncated packets; answers a dead server with SERVFAIL in time', async () => {
    agent.cliJson(['connect', 'kernel://dead-dns/nsm-1', '--netns', nsDead, '--id', 'dns-dead']);
    madeDirs.push(`/etc/netns/${nsDead}`);
    expect(readFileSync(`/etc/netns/${nsDead}/resolv.conf`, 'utf8')).toContain('nameserver 127.0.0.1');
    const out = py(
      nsDead,
      `${QUERY_PY}
import os
junk = [b'', b'\\x00', os.urandom(11), os.urandom(12), os.urandom(100), os.urandom(1500), os.urandom(9000),
        struct.pack('>HHHHHH', 5, 0x100, 1, 0, 0, 0) + b'\\x07exam',       # cut inside the question
        struct.pack('>HHHHHH', 6, 0x100, 1, 0, 0, 0) + b'\\xc0\\x0c\\x00\\x01\\x00\\x01',  # a pointer loop
        struct.pack('>HHHHHH', 8, 0x100, 40, 0, 0, 0) + b'\\x01a\\x00\\x00\\x01\\x00\\x01']  # 40 questions, one given
for j in junk:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(j, ('127.0.0.1', 53))
for j in junk:
    t = socket.create_connection(('127.0.0.1', 53), timeout=2)
    try:
        t.sendall(struct.pack('>H', len(j) & 0xffff) + j); t.recv(10)
    except Exception: pass
    t.close()
# a formerr, not silence, for a message cut inside its question
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(3)
u.sendto(struct.pack('>HHHHHH', 5, 0x100, 1, 0, 0, 0) + b'\\x07exam', ('127.0.0.1', 53))
print('formerr', u.recv(512)[3] & 15)
rcode, an, took = query('anything.example')
print('dead', rcode, 'fast' if took < 4.5 else 'slow %.1f' % took)`,
    );
    expect(out.split('\n')).toEqual(['formerr 1', 'dead 2 fast']);
    // still serving: the agent's resolver answers the next query the same way, and the agent is alive
    expect(py(nsDead, `${QUERY_PY}\nprint(query('again.example')[0])`)).toBe('2');
    expect(agent.cli(['status']).code).toBe(0);

    expect(agent.cli(['disconnect', 'dns-dead']).code).toBe(0);
    // the namespace had no directory of its own: it goes again
    expect(await until(() => !existsSync(`/etc/netns/${nsDead}`), 5_000)).toBe(true);
  }, 60_000);

  it('puts resolv.conf back when the agent stops with the connection up, and after a crash at the next start', async () => {
    agent.cliJson(['connect', 'kernel://dns-svc/nsm-1', '--netns', nsc, '--id', 'dns-2']);
    expect(readFileSync(`/etc/netns/${nsc}/resolv.conf`, 'utf8')).toContain('nameserver 127.0.0.1');
    await agent.stop();
    expect(readFileSync(`/etc/netns/${nsc}/resolv.conf`, 'utf8')).toBe(originalText);

    agent = await startAgent({ name: 'host-b', endpoints: [{ name: 'dns-nse-b', services: ['dns-svc'], cidr: '172.16.1.100/31', netns: nse, dns: [{ servers: ['172.16.1.100'] }] }] });
    agent.cliJson(['connect', 'kernel://dns-svc/nsm-2', '--netns', nsc, '--id', 'dns-3']);
    expect(readFileSync(`/etc/netns/${nsc}/resolv.conf`, 'utf8')).toContain('nameserver 127.0.0.1');
    await agent.stop('SIGKILL');
    // nothing ran to restore it
    expect(readFileSync(`/etc/netns/${nsc}/resolv.conf`, 'utf8')).toContain('nameserver 127.0.0.1');
    // a new agent (with no connection into the namespace) repairs it as it starts
    agent = await startAgent({ name: 'host-c' });
    expect(readFileSync(`/etc/netns/${nsc}/resolv.conf`, 'utf8')).toBe(originalText);
    expect(existsSync(`/etc/netns/${nsc}/resolv.conf.nsm-agent-original`)).toBe(false);
  }, 60_000);

  it('a systemd unit\'s namespace: its own file in the runtime directory, rewritten in place, kept over an agent stop', async () => {
    await agent.stop();
    agent = await startAgent({ name: 'host-d', endpoints: [{ name: 'dns-nse-d', services: ['dns-svc'], cidr: '172.16.1.100/31', netns: nse, dns: [{ servers: ['172.16.1.100'], searchDomains: ['my.coredns.service'] }] }] });
    // the unit manager's names: namespace nsm-<unit>, connection ids <unit>.service/<ifname>
    const unit = uniq('u');
    const ns = `nsm-${unit}`;
    addNetns(ns);
    const file = `${agent.dir}/dns/${ns}.resolv.conf`;
    const hostBefore = readFileSync('/etc/resolv.conf');
    try {
      agent.cliJson(['connect', 'kernel://dns-svc/nsm-1', '--netns', ns, '--id', `${unit}.service/nsm-1`]);
      const wired = readFileSync(file, 'utf8');
      expect(wired).toMatch(/^# nsm-agent resolver for the namespace of a systemd unit;/);
      expect(wired).toContain('\nnameserver 127.0.0.1\nsearch my.coredns.service');
      expect(existsSync(`/etc/netns/${ns}`)).toBe(false);
      // as the unit sees it: the file bound over /etc/resolv.conf in its namespace
      const inUnit = () => sh('ip', ['netns', 'exec', ns, 'sh', '-c', `mount --bind ${file} /etc/resolv.conf && getent hosts my.coredns.service`]).stdout.trim().split(/\s+/)[0];
      expect(await until(() => inUnit() === '172.16.1.100', 5_000)).toBe(true);
      const ino = statSync(file).ino;
      await agent.stop('SIGTERM', true); // keeps its directory (afterAll removes it)
      // the unit runs on: the same file (its bind mount), now with the host's resolvers
      expect(statSync(file).ino).toBe(ino);
      expect(readFileSync(file, 'utf8')).toBe(`# nsm-agent: no resolver in this namespace now; the host resolv.conf follows\n${hostBefore}`);
      expect(readFileSync('/etc/resolv.conf').equals(hostBefore)).toBe(true);
    } finally {
      delNetns(ns);
      rmSync(file, { force: true });
    }
  }, 60_000);
});
