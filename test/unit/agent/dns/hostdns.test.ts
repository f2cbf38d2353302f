import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { DNSConfig } from '../../../../src/api';
import { createLogger } from '../../../../src/core/log';
import { HostDns, linkDnsOf } from '../../../../src/agent/dns/hostdns';
import { ResolvedClient } from '../../../../src/agent/dns/resolved';
import { DbusError, type DbusCall } from '../../../../src/agent/systemd/dbus';

/** A fake system bus in front of the real client: records calls; `down` makes resolved absent. */
function fakeResolved() {
  const state = { down: false, refused: false, calls: [] as DbusCall[] };
  const bus = {
    async call(c: DbusCall) {
      if (state.down) throw new DbusError('org.freedesktop.DBus.Error.ServiceUnknown', 'The name org.freedesktop.resolve1 was not provided', c.member);
      if (state.refused) throw new DbusError('org.freedesktop.DBus.Error.AccessDenied', `${c.member}: AccessDenied: not allowed`, c.member);
      state.calls.push(c);
      return [];
    },
  };
  return { state, client: new ResolvedClient(bus) };
}

const calls = (s: { calls: DbusCall[] }) => s.calls.map((c) => `${c.member} ${JSON.stringify(c.body)}`);

function logs() {
  const lines: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
  return { lines, log: createLogger({ level: 'debug', sink: (level, msg, fields) => lines.push({ level, msg, fields }) }) };
}

const cfg = (servers: string[], domains: string[]): DNSConfig[] => [{ dns_server_ips: servers, search_domains: domains }];
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function setup(opts: { links?: Record<string, number>; recordFile?: string; retryMs?: number } = {}) {
  const { state, client } = fakeResolved();
  const links = { 'nsm-1': 7, ...(opts.links ?? {}) };
  const l = logs();
  const dns = new HostDns({
    log: l.log,
    resolved: client,
    ifindexOf: async (name) => links[name as keyof typeof links],
    ifnameOf: async (index) => Object.entries(links).find(([, i]) => i === index)?.[0],
    recordFile: opts.recordFile,
    retryMs: opts.retryMs ?? 60_000,
  });
  return { state, dns, links, logs: l.lines };
}

describe('host DNS through systemd-resolved', () => {
  it('takes servers and domains of every usable config', () => {
    expect(linkDnsOf([...cfg(['10.0.0.1', 'bad'], ['a.mesh']), ...cfg(['10.0.0.1', '10.0.0.2'], ['b.mesh', 'bad domain'])])).toEqual({
      servers: ['10.0.0.1', '10.0.0.2'],
      domains: ['a.mesh', 'b.mesh'],
    });
    expect(linkDnsOf(cfg([], ['a.mesh']))).toBeUndefined();
  });

  it('wires a host connection with DNS on its interface, re-applies on change, reverts on close', async () => {
    const { state, dns } = setup();
    dns.connectionChanged('c1', { netns: 'host', ifname: 'nsm-1', configs: cfg(['172.16.1.100'], ['my.service']) });
    await dns.settled();
    expect(calls(state)).toEqual([
      'SetLinkDNS [7,[[2,[172,16,1,100]]]]',
      'SetLinkDomains [7,[["my.service",true]]]',
      'SetLinkDefaultRoute [7,false]',
    ]);
    expect(dns.view()).toEqual([{ connection_id: 'c1', interface: 'nsm-1', servers: ['172.16.1.100'], domains: ['my.service'], wired: true, reason: '' }]);

    // a refresh with the same configs: nothing to do
    state.calls = [];
    dns.connectionChanged('c1', { netns: 'host', ifname: 'nsm-1', configs: cfg(['172.16.1.100'], ['my.service']) });
    await dns.settled();
    expect(state.calls).toEqual([]);

    // changed configs: applied again
    dns.connectionChanged('c1', { netns: 'host', ifname: 'nsm-1', configs: cfg(['172.16.1.101'], ['my.service', 'other.mesh']) });
    await dns.settled();
    expect(calls(state)).toEqual([
      'SetLinkDNS [7,[[2,[172,16,1,101]]]]',
      'SetLinkDomains [7,[["my.service",true],["other.mesh",true]]]',
      'SetLinkDefaultRoute [7,false]',
    ]);

    state.calls = [];
    dns.connectionChanged('c1', undefined);
    await dns.settled();
    expect(calls(state)).toEqual(['RevertLink [7]']);
    expect(dns.view()).toEqual([]);
  });

  it('leaves named namespaces and connections without DNS alone', async () => {
    const { state, dns } = setup();
    dns.connectionChanged('c1', { netns: 'blue', ifname: 'nsm-1', configs: cfg(['172.16.1.100'], ['my.service']) });
    dns.connectionChanged('c2', { netns: 'host', ifname: 'nsm-1', configs: [] });
    await dns.settled();
    expect(state.calls).toEqual([]);
    expect(dns.view()).toEqual([]);
  });

  it('reverts when the configs go and when the interface is made anew', async () => {
    const { state, dns, links } = setup();
    dns.connectionChanged('c1', { netns: 'host', ifname: 'nsm-1', configs: cfg(['10.0.0.1'], []) });
    await dns.settled();
    links['nsm-1'] = 12; // healed: a new interface with the same name
    state.calls = [];
    dns.connectionChanged('c1', { netns: 'host', ifname: 'nsm-1', configs: cfg(['10.0.0.1'], []) });
    await dns.settled();
    expect(calls(state)).toEqual(['RevertLink [7]', 'SetLinkDNS [12,[[2,[10,0,0,1]]]]', 'SetLinkDomains [12,[]]', 'SetLinkDefaultRoute [12,false]']);
    state.calls = [];
    dns.connectionChanged('c1', { netns: 'host', ifname: 'nsm-1', configs: [] });
    await dns.settled();
    expect(calls(state)).toEqual(['RevertLink [12]']);
  });

  it('without resolved: not wired, the reason in status and the log, wired once resolved answers', async () => {
    const { state, dns, logs } = setup({ retryMs: 20 });
    state.down = true;
    dns.connectionChanged('c1', { netns: 'host', ifname: 'nsm-1', configs: cfg(['172.16.1.100'], ['my.service']) });
    await dns.settled();
    const [v] = dns.view();
    expect(v).toMatchObject({ connection_id: 'c1', wired: false });
    expect(v!.reason).toMatch(/^systemd-resolved SetLinkDNS: resolved not running: org\.freedesktop\.DBus\.Error\.ServiceUnknown/);
    const warn = logs.filter((l) => l.msg === 'host DNS not wired');
    expect(warn).toHaveLength(1);
    expect(warn[0]!.fields).toMatchObject({ id: 'c1', interface: 'nsm-1', reason: 'resolved not running' });
    // retried without logging the same reason again
    await new Promise((r) => setTimeout(r, 60));
    await dns.settled();
    expect(logs.filter((l) => l.msg === 'host DNS not wired')).toHaveLength(1);

    state.down = false;
    await new Promise((r) => setTimeout(r, 60));
    await dns.settled();
    expect(dns.view()[0]).toMatchObject({ wired: true, reason: '' });
    expect(logs.some((l) => l.msg === 'host DNS wired through systemd-resolved after all')).toBe(true);
    await dns.stop();
  });

  it('a refused call says so', async () => {
    const { state, dns } = setup();
    state.refused = true;
    dns.connectionChanged('c1', { netns: 'host', ifname: 'nsm-1', configs: cfg(['172.16.1.100'], []) });
    await dns.settled();
    expect(dns.view()[0]!.reason).toMatch(/call refused: .*AccessDenied/);
    await dns.stop();
  });

  it('an interface that is not there is not wired, with the reason', async () => {
    const { state, dns } = setup();
    dns.connectionChanged('c1', { netns: 'host', ifname: 'nsm-9', configs: cfg(['172.16.1.100'], []) });
    await dns.settled();
    expect(state.calls).toEqual([]);
    expect(dns.view()[0]).toMatchObject({ wired: false, reason: 'interface nsm-9 not found in the host namespace' });
    await dns.stop();
  });

  it('stop reverts every link and forgets the record; later changes are ignored', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nsm-hostdns-'));
    dirs.push(dir);
    const recordFile = path.join(dir, 'dns', 'host-links.json');
    const { state, dns } = setup({ links: { 'nsm-2': 8 }, recordFile });
    dns.connectionChanged('c1', { netns: 'host', ifname: 'nsm-1', configs: cfg(['10.0.0.1'], ['a.mesh']) });
    dns.connectionChanged('c2', { netns: 'host', ifname: 'nsm-2', configs: cfg(['10.0.0.2'], ['b.mesh']) });
    await dns.settled();
    expect(JSON.parse(readFileSync(recordFile, 'utf8'))).toEqual({ pid: process.pid, links: [{ ifindex: 7, ifname: 'nsm-1' }, { ifindex: 8, ifname: 'nsm-2' }] });
    state.calls = [];
    await dns.stop();
    expect(calls(state).sort()).toEqual(['RevertLink [7]', 'RevertLink [8]']);
    expect(existsSync(recordFile)).toBe(false);
    dns.connectionChanged('c3', { netns: 'host', ifname: 'nsm-1', configs: cfg(['10.0.0.1'], []) });
    await dns.settled();
    expect(calls(state)).toHaveLength(2);
  });

  it('a start reverts the links a dead run recorded, when the interface is still the same', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nsm-hostdns-'));
    dirs.push(dir);
    const recordFile = path.join(dir, 'host-links.json');
    // a pid that is not running (the highest possible pid is never this test's)
    writeFileSync(recordFile, JSON.stringify({ pid: 4194304, links: [{ ifindex: 7, ifname: 'nsm-1' }, { ifindex: 8, ifname: 'gone-1' }] }));
    const { state, dns } = setup({ recordFile });
    await dns.repair();
    expect(calls(state)).toEqual(['RevertLink [7]']);
    expect(existsSync(recordFile)).toBe(false);
  });

  it('a record of a running agent is left alone', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nsm-hostdns-'));
    dirs.push(dir);
    const recordFile = path.join(dir, 'host-links.json');
    writeFileSync(recordFile, JSON.stringify({ pid: process.ppid, links: [{ ifindex: 7, ifname: 'nsm-1' }] }));
    const { state, dns } = setup({ recordFile });
    await dns.repair();
    expect(state.calls).toEqual([]);
    expect(existsSync(recordFile)).toBe(true);
  });
});
