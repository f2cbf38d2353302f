/** The file and development-CA identity sources (real files in temp dirs). */
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, rmSync, statSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FakeClock } from '../../../src/core/clock';
import { AgentError } from '../../../src/core/errors';
import { LocalCa } from '../../../src/spire/ca';
import { DevX509Source, hostOf, isLoopbackHost } from '../../../src/spire/dev';
import { FileX509Source } from '../../../src/spire/files';
import type { X509Svid } from '../../../src/spire/svid';
import { toPem } from '../../../src/spire/x509';
import { nextEvent, waitFor } from '../../helpers/spire/wait';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

function tmp(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'nsm-src-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const ID = 'spiffe://example.org/nsm/agent/a';

function write(dir: string, svid: X509Svid, ca: LocalCa, name = ''): { cert: string; key: string; bundle: string } {
  const f = { cert: path.join(dir, `svid${name}.pem`), key: path.join(dir, `svid${name}.key`), bundle: path.join(dir, `bundle${name}.pem`) };
  // write through rename, as certificate tools do
  const put = (file: string, data: string) => {
    writeFileSync(`${file}.new`, data);
    renameSync(`${file}.new`, file);
  };
  put(f.key, svid.key.export({ type: 'pkcs8', format: 'pem' }) as string);
  put(f.cert, toPem(svid.chain));
  put(f.bundle, toPem(ca.bundle()));
  return f;
}

function files(opts: ConstructorParameters<typeof FileX509Source>[0]): FileX509Source {
  const s = new FileX509Source({ pollMs: 20, ...opts });
  cleanups.push(() => s.close());
  return s;
}

describe('file identity source', () => {
  it('loads the SVID and bundle, and reloads when the files change', async () => {
    const dir = tmp();
    const ca = LocalCa.create({ trustDomain: 'example.org' });
    const f = write(dir, ca.issue(ID), ca);
    const s = files(f);
    await s.ready();
    expect(s.svid().id).toBe(ID);
    const next = ca.issue(ID);
    const updated = nextEvent(s, 'update');
    write(dir, next, ca);
    await updated;
    expect(s.svid().chain[0]?.fingerprint256).toBe(next.chain[0]?.fingerprint256);
  });

  it('keeps the last good identity when files are half-written, mismatched or broken, and says why', async () => {
    const dir = tmp();
    const ca = LocalCa.create({ trustDomain: 'example.org' });
    const good = ca.issue(ID);
    const f = write(dir, good, ca);
    const s = files(f);
    await s.ready();
    const problems: AgentError[] = [];
    s.on('problem', (e) => problems.push(e));
    writeFileSync(f.key, ca.issue(ID).key.export({ type: 'pkcs8', format: 'pem' }) as string); // key of another SVID
    await waitFor(() => problems.length === 1);
    expect(problems[0]?.message).toMatch(/does not match/);
    writeFileSync(f.cert, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    await waitFor(() => problems.length === 2);
    expect(problems[1]?.message).toContain(f.cert);
    const other = LocalCa.create({ trustDomain: 'example.org' });
    write(dir, other.issue(ID), ca); // SVID from a CA that is not in the bundle
    await waitFor(() => problems.length === 3);
    expect(problems[2]?.message).toMatch(/does not verify against/);
    rmSync(f.bundle);
    await waitFor(() => problems.length === 4);
    expect(problems[3]?.message).toMatch(/ENOENT/);
    expect(s.svid().chain[0]?.fingerprint256).toBe(good.chain[0]?.fingerprint256);
  });

  it('refuses to start without a usable identity, with the reason; recovers when fixed', async () => {
    const dir = tmp();
    const s = files({ cert: path.join(dir, 'svid.pem'), key: path.join(dir, 'svid.key'), bundle: path.join(dir, 'bundle.pem') });
    await expect(s.ready()).rejects.toThrow(/svid.pem/);
    const ca = LocalCa.create({ trustDomain: 'example.org' });
    write(dir, ca.issue(ID), ca);
    await waitFor(() => s.current());
    await expect(s.ready()).resolves.toBeTruthy();
  });

  it('refuses an RSA SVID at start: NSM tokens need EC P-256', async () => {
    const dir = tmp();
    const ca = LocalCa.create({ trustDomain: 'example.org' });
    const s = files(write(dir, ca.issue(ID, { keyType: 'rsa-2048' }), ca));
    await expect(s.ready()).rejects.toThrow(/svid.key: the SVID key is rsa, an EC P-256 key is needed/);
  });

  it('reads federated bundles (PEM or SPIFFE bundle JSON) under their trust domains', async () => {
    const dir = tmp();
    const ca = LocalCa.create({ trustDomain: 'example.org' });
    const other = LocalCa.create({ trustDomain: 'other.org' });
    const third = LocalCa.create({ trustDomain: 'third.org' });
    const f = write(dir, ca.issue(ID), ca);
    const pem = path.join(dir, 'other.pem');
    writeFileSync(pem, toPem(other.bundle()));
    const json = path.join(dir, 'third.json');
    writeFileSync(
      json,
      JSON.stringify({
        spiffe_sequence: 1,
        keys: [
          { use: 'x509-svid', kty: 'EC', crv: 'P-256', x5c: [third.root.raw.toString('base64')] },
          { use: 'jwt-svid', kty: 'EC', kid: 'k1', crv: 'P-256', x: 'AA', y: 'AA' },
        ],
      }),
    );
    const s = files({ ...f, federated: { 'spiffe://other.org': pem, 'third.org': json } });
    const ctx = await s.ready();
    expect([...ctx.bundles.keys()].sort()).toEqual(['example.org', 'other.org', 'third.org']);
    expect(ctx.bundles.get('third.org')?.[0]?.fingerprint256).toBe(third.root.fingerprint256);
  });

  it('accepts DER files and SEC1 keys', async () => {
    const dir = tmp();
    const ca = LocalCa.create({ trustDomain: 'example.org' });
    const svid = ca.issue(ID);
    const f = { cert: path.join(dir, 'c.der'), key: path.join(dir, 'k.der'), bundle: path.join(dir, 'b.der') };
    writeFileSync(f.cert, svid.chain[0]!.raw);
    writeFileSync(f.key, svid.key.export({ type: 'sec1', format: 'der' }));
    writeFileSync(f.bundle, ca.root.raw);
    expect((await files(f).ready()).svids[0]?.id).toBe(ID);
  });
});

describe('development identity source', () => {
  it('creates the CA once (0700 dir, 0600 key), issues and renews its SVID at half-life', async () => {
    const dir = path.join(tmp(), 'dev-ca');
    const clock = new FakeClock(Date.now());
    const s = new DevX509Source({ caDir: dir, name: 'host-a', svidTtlMs: 60_000, clock });
    cleanups.push(() => s.close());
    await s.ready();
    expect(s.svid().id).toBe('spiffe://nsm.local/nsm-agent/host-a');
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(dir, 'ca.key')).mode & 0o777).toBe(0o600);
    const first = s.svid();
    expect(first.expiresAt - clock.now()).toBeLessThanOrEqual(60_000);
    clock.advance(29_000);
    expect(s.svid().chain[0]?.fingerprint256).toBe(first.chain[0]?.fingerprint256);
    clock.advance(2_000);
    expect(s.svid().chain[0]?.fingerprint256).not.toBe(first.chain[0]?.fingerprint256);

    const again = new DevX509Source({ caDir: dir, name: 'host-b', clock });
    cleanups.push(() => again.close());
    await again.ready();
    expect(again.bundle('nsm.local')?.[0]?.fingerprint256).toBe(s.bundle('nsm.local')?.[0]?.fingerprint256);
    await s.close();
    expect(clock.pending()).toBe(1); // only host-b's renewal timer is left
  });

  it('refuses a CA directory of another trust domain and bad IDs, through ready()', async () => {
    const dir = tmp();
    LocalCa.create({ trustDomain: 'example.org' }).save(dir);
    const s = new DevX509Source({ caDir: dir });
    cleanups.push(() => s.close());
    await expect(s.ready()).rejects.toThrow(/trust domain example.org, not nsm.local/);
    const t = new DevX509Source({ caDir: tmp(), id: 'spiffe://other.org/x' });
    cleanups.push(() => t.close());
    await expect(t.ready()).rejects.toThrow(/not in trust domain nsm.local/);
  });

  it('knows loopback addresses', () => {
    for (const h of ['127.0.0.1', '127.3.4.5', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1']) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', 'example.org', '']) expect(isLoopbackHost(h), h).toBe(false);
    expect(hostOf('[::1]:5001')).toBe('::1');
    expect(hostOf('127.0.0.1:5001')).toBe('127.0.0.1');
    expect(hostOf('::1')).toBe('::1');
    expect(hostOf('localhost')).toBe('localhost');
  });
});
