import { describe, it, expect, afterEach } from 'vitest';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseResolvConf, resolvConfFiles } from '../../../../src/agent/dns/resolvconf';

describe('resolv.conf of named namespaces', () => {
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const setup = () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'nsm-resolv-'));
    const host = path.join(dir, 'host-resolv.conf');
    writeFileSync(host, 'nameserver 10.0.0.53\nsearch corp.example\noptions ndots:2\n');
    return { etc: path.join(dir, 'netns'), host, files: resolvConfFiles(path.join(dir, 'netns'), host) };
  };

  it('parses nameservers and the last search line', () => {
    expect(parseResolvConf('# c\nnameserver 1.1.1.1 # x\nnameserver fe80::1%eth0\ndomain a.b\nsearch c.d e.f\n')).toEqual({ nameservers: ['1.1.1.1', 'fe80::1'], search: ['c.d', 'e.f'] });
  });

  it('keeps an existing file byte for byte and puts it back', () => {
    const { etc, files } = setup();
    mkdirSync(path.join(etc, 'app'), { recursive: true });
    const original = 'nameserver 192.0.2.1\nsearch own.example\noptions ndots:3 timeout:2\n\n# no final newline';
    writeFileSync(path.join(etc, 'app', 'resolv.conf'), original, { mode: 0o600 });
    chmodSync(path.join(etc, 'app', 'resolv.conf'), 0o600);
    expect(files.wire('app', ['my.coredns.service'])).toEqual({ nameservers: ['192.0.2.1'], search: ['own.example'] });
    const ours = readFileSync(path.join(etc, 'app', 'resolv.conf'), 'utf8');
    expect(ours).toMatch(/^# nsm-agent resolver/);
    expect(ours).toContain('\nnameserver 127.0.0.1\nsearch my.coredns.service\noptions ndots:3 timeout:2\n');
    files.update('app', ['a.b', 'c.d']);
    expect(readFileSync(path.join(etc, 'app', 'resolv.conf'), 'utf8')).toContain('\nsearch a.b c.d\noptions ndots:3 timeout:2\n');
    expect(files.ours()).toEqual([{ name: 'app', pid: process.pid }]);
    // a second wire (a run that did not restore) keeps the first original
    expect(files.wire('app', [])).toEqual({ nameservers: ['192.0.2.1'], search: ['own.example'] });
    files.restore('app');
    expect(readFileSync(path.join(etc, 'app', 'resolv.conf'), 'utf8')).toBe(original);
    expect(statSync(path.join(etc, 'app', 'resolv.conf')).mode & 0o777).toBe(0o600);
    expect(existsSync(path.join(etc, 'app', 'resolv.conf.nsm-agent-original'))).toBe(false);
    expect(files.ours()).toEqual([]);
    files.restore('app'); // not ours: untouched
    expect(readFileSync(path.join(etc, 'app', 'resolv.conf'), 'utf8')).toBe(original);
  });

  it('without a file of its own, the namespace resolved with the host\'s; the directory made goes again', () => {
    const { etc, files } = setup();
    expect(files.wire('bare', [])).toEqual({ nameservers: ['10.0.0.53'], search: ['corp.example'] });
    const bare = readFileSync(path.join(etc, 'bare', 'resolv.conf'), 'utf8');
    expect(bare).not.toContain('search');
    expect(bare).toContain('\noptions ndots:2\n');
    files.restore('bare');
    expect(existsSync(path.join(etc, 'bare'))).toBe(false);
    // a directory that was there stays
    mkdirSync(path.join(etc, 'kept'));
    files.wire('kept', ['x.y']);
    files.restore('kept');
    expect(existsSync(path.join(etc, 'kept'))).toBe(true);
    expect(existsSync(path.join(etc, 'kept', 'resolv.conf'))).toBe(false);
  });

  it('our file and directory are readable by everyone whatever the umask (the packaged unit has 0027)', () => {
    const { etc, files } = setup();
    const before = process.umask(0o027);
    try {
      files.wire('strict', ['x.y']);
      expect(statSync(path.join(etc, 'strict')).mode & 0o777).toBe(0o755);
      expect(statSync(path.join(etc, 'strict', 'resolv.conf')).mode & 0o777).toBe(0o644);
      files.update('strict', ['a.b']);
      expect(statSync(path.join(etc, 'strict', 'resolv.conf')).mode & 0o777).toBe(0o644);
      files.restore('strict');
    } finally {
      process.umask(before);
    }
  });
});

describe('DNS configs from connections', () => {
  it('keep only IP addresses and domain names: nothing can add a line to resolv.conf', async () => {
    const { usableConfigs } = await import('../../../../src/agent/dns');
    expect(
      usableConfigs([
        { dns_server_ips: ['172.16.1.100', 'evil\nnameserver 6.6.6.6', '2001:db8::53'], search_domains: ['my.service.', 'x\nnameserver 6.6.6.6', 'a b', 'ok.example'] },
        { dns_server_ips: ['not-an-ip'], search_domains: ['lost.example'] },
        { search_domains: ['no.servers'] },
      ]),
    ).toEqual([{ dns_server_ips: ['172.16.1.100', '2001:db8::53'], search_domains: ['my.service', 'ok.example'] }]);
    const many = Array.from({ length: 40 }, (_, i) => `10.0.0.${i + 1}`);
    expect(usableConfigs([{ dns_server_ips: many }])[0]!.dns_server_ips).toHaveLength(16);
  });
});
