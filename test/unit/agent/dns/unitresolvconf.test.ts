import { describe, it, expect, afterEach } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isUnitConnection } from '../../../../src/agent/dns';
import { unitResolvConfFiles } from '../../../../src/agent/dns/unitresolvconf';

describe('resolv.conf of systemd units namespaces', () => {
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const HOST = 'nameserver 10.0.0.53\nsearch corp.example\noptions ndots:2\n';
  const setup = () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'nsm-unit-resolv-'));
    const host = path.join(dir, 'host-resolv.conf');
    writeFileSync(host, HOST);
    const files = unitResolvConfFiles(path.join(dir, 'dns'), host);
    return { host, files, file: files.fileOf('nsm-app') };
  };

  it('writes the file in place (one inode over its life), world-readable, and never the host file', () => {
    const { host, files, file } = setup();
    const old = process.umask(0o027);
    try {
      expect(files.wire('nsm-app', ['vl3.svc'])).toEqual({ nameservers: ['10.0.0.53'], search: ['corp.example'] });
    } finally {
      process.umask(old);
    }
    expect(file).toBe(path.join(dir, 'dns', 'nsm-app.resolv.conf'));
    const text = readFileSync(file, 'utf8');
    expect(text).toMatch(/^# nsm-agent resolver for the namespace of a systemd unit; pid=\d+\n/);
    expect(text).toContain('\nnameserver 127.0.0.1\nsearch vl3.svc\noptions ndots:2\n');
    expect(statSync(file).mode & 0o777).toBe(0o644);
    expect(statSync(path.dirname(file)).mode & 0o777).toBe(0o755);
    const ino = statSync(file).ino;
    files.update('nsm-app', ['vl3.svc', 'corp.example']);
    expect(readFileSync(file, 'utf8')).toContain('\nsearch vl3.svc corp.example\n');
    expect(statSync(file).ino).toBe(ino);
    expect(files.ours()).toEqual([{ name: 'nsm-app', pid: process.pid }]);
    // an agent stop: the host's resolvers in the same file, which stays for the next agent
    files.release('nsm-app', true);
    expect(statSync(file).ino).toBe(ino);
    expect(readFileSync(file, 'utf8')).toMatch(new RegExp(`^# nsm-agent: no resolver[^\\n]*\\n${HOST}$`));
    expect(files.ours()).toEqual([]);
    files.wire('nsm-app', []);
    expect(statSync(file).ino).toBe(ino);
    expect(readFileSync(file, 'utf8')).toContain('\nnameserver 127.0.0.1\noptions ndots:2\n');
    // the last connection gone: removed
    files.restore('nsm-app');
    expect(existsSync(file)).toBe(false);
    files.restore('nsm-app');
    expect(readFileSync(host, 'utf8')).toBe(HOST);
  });

  it('update of a file that is not wired does nothing', () => {
    const { files, file } = setup();
    files.update('nsm-app', ['x.y']);
    expect(existsSync(file)).toBe(false);
  });

  it('tells a unit connection in its own namespace from others', () => {
    expect(isUnitConnection('nsmt-m1.service/nsm-1', 'nsm-nsmt-m1')).toBe(true);
    expect(isUnitConnection('tmpl@a.service/nsm-2', 'nsm-tmpl@a')).toBe(true);
    expect(isUnitConnection('nsmt-m1.service/nsm-1', 'other')).toBe(false);
    expect(isUnitConnection('3f2a-uuid', 'nsm-3f2a-uuid')).toBe(false);
    expect(isUnitConnection('/nsm-1', 'nsm-')).toBe(false);
  });
});
