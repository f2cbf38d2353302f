/** `nsm-agent identity`: create a CA, issue SVIDs, show certificates; the files work as an identity. */
import { describe, it, expect, afterEach } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runIdentity } from '../../../src/agent/cli/identity';
import { main } from '../../../src/agent/main';
import { FileX509Source } from '../../../src/spire/files';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

function tmp(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'nsm-idcli-'));
  cleanups.push(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runIdentity(args, { out: (t) => (out += `${t}\n`), err: (t) => (err += `${t}\n`) });
  return { code, out, err };
}

describe('nsm-agent identity', () => {
  it('creates a CA and issues an SVID that openssl verifies and the files source loads', async () => {
    const dir = tmp();
    const caDir = path.join(dir, 'ca');
    const out = path.join(dir, 'host-a');
    const created = await run('create-ca', '--trust-domain', 'example.org', '--dir', caDir);
    expect(created).toMatchObject({ code: 0 });
    expect(created.out).toMatch(/created the CA of trust domain example.org/);
    expect(statSync(path.join(caDir, 'ca.key')).mode & 0o777).toBe(0o600);

    const issued = await run('issue', '--ca-dir', caDir, '--id', 'spiffe://example.org/nsm/agent/host-a', '--ttl', '2h', '--out', out, '--dns', 'host-a.example.org');
    expect(issued.code).toBe(0);
    expect(statSync(path.join(out, 'svid.key')).mode & 0o777).toBe(0o600);
    const verified = execFileSync('openssl', ['verify', '-CAfile', path.join(out, 'bundle.pem'), path.join(out, 'svid.pem')], { encoding: 'utf8' });
    expect(verified).toMatch(/OK/);

    const src = new FileX509Source({ cert: path.join(out, 'svid.pem'), key: path.join(out, 'svid.key'), bundle: path.join(out, 'bundle.pem') });
    cleanups.push(() => src.close());
    await src.ready();
    expect(src.svid().id).toBe('spiffe://example.org/nsm/agent/host-a');
    const ttl = src.svid().expiresAt - Date.now();
    expect(ttl).toBeGreaterThan(2 * 3600_000 - 60_000);
    expect(ttl).toBeLessThanOrEqual(2 * 3600_000);
  });

  it('shows certificates as text and JSON', async () => {
    const dir = tmp();
    await run('create-ca', '--trust-domain', 'example.org', '--dir', dir);
    await run('issue', '--ca-dir', dir, '--id', 'spiffe://example.org/w', '--out', dir, '--ttl', '30m');
    const text = await run('show', path.join(dir, 'svid.pem'));
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/spiffe id: +spiffe:\/\/example.org\/w/);
    expect(text.out).toMatch(/key usage: +digitalSignature, keyEncipherment, keyAgreement; serverAuth, clientAuth/);
    expect(text.out).toMatch(/\(valid\)/);
    const json = await run('show', '--json', path.join(dir, 'ca.pem'));
    const [ca] = JSON.parse(json.out) as { ca: boolean; spiffeIds: string[]; keyUsage: string[]; publicKey: string }[];
    expect(ca).toMatchObject({ ca: true, spiffeIds: ['spiffe://example.org'], keyUsage: ['keyCertSign', 'cRLSign'], publicKey: 'EC prime256v1' });
  });

  it('refuses to overwrite a CA without --force, and reports bad input with exit codes 1 and 2', async () => {
    const dir = tmp();
    expect((await run('create-ca', '--trust-domain', 'example.org', '--dir', dir)).code).toBe(0);
    const again = await run('create-ca', '--trust-domain', 'example.org', '--dir', dir);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/already holds a CA.*--force/);
    const pem = readFileSync(path.join(dir, 'ca.pem'), 'utf8');
    expect((await run('create-ca', '--trust-domain', 'example.org', '--dir', dir, '--force')).code).toBe(0);
    expect(readFileSync(path.join(dir, 'ca.pem'), 'utf8')).not.toBe(pem);

    expect((await run('issue', '--ca-dir', dir, '--id', 'spiffe://other.org/x', '--out', dir)).err).toMatch(/not in trust domain example.org/);
    expect((await run('issue', '--ca-dir', dir, '--id', 'spiffe://example.org', '--out', dir)).err).toMatch(/trust domain ID/);
    expect((await run('issue', '--ca-dir', path.join(dir, 'nope'), '--id', 'spiffe://example.org/x', '--out', dir)).err).toMatch(/no CA in/);
    expect((await run('issue', '--ca-dir', dir, '--id', 'spiffe://example.org/x')).code).toBe(2);
    expect((await run('issue', '--ca-dir', dir, '--id', 'spiffe://example.org/x', '--out', dir, '--ttl', 'soon')).code).toBe(2);
    expect((await run('create-ca', '--trust-domain', 'Bad_TD!', '--dir', tmp())).err).toMatch(/invalid trust domain/);
    expect((await run('frobnicate')).code).toBe(2);
    expect((await run('show', path.join(dir, 'missing.pem'))).code).toBe(1);
    const rsa = await run('issue', '--ca-dir', dir, '--id', 'spiffe://example.org/x', '--out', dir, '--key-type', 'rsa-2048');
    expect(rsa.code).toBe(0);
    expect(rsa.err).toMatch(/ES256/);
  });

  it('is a subcommand of nsm-agent', async () => {
    const write = process.stdout.write.bind(process.stdout);
    let printed = '';
    process.stdout.write = ((s: string) => ((printed += s), true)) as typeof process.stdout.write;
    try {
      expect(await main(['identity', 'help'])).toBe(0);
    } finally {
      process.stdout.write = write;
    }
    expect(printed).toMatch(/create-ca --trust-domain TD --dir DIR/);
  });
});
