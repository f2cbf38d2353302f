/**
 * The agent's identity from certificate files (`identity.source: files`), for hosts without a
 * SPIRE agent (e.g. SVIDs made with `nsm-agent identity issue`, or by another PKI):
 * - `cert`: the SVID chain, leaf first (PEM, or concatenated DER);
 * - `key`: its private key (PEM of any kind, or PKCS#8 / SEC1 DER);
 * - `bundle`: the own trust domain's CA certificates (PEM, concatenated DER, or a SPIFFE
 *   bundle JSON document with `x509-svid` keys);
 * - `federated`: trust domain → bundle file, for the peers' trust domains this host trusts.
 *
 * The files are polled (default every 5 s) and reloaded when their contents change; polling
 * rather than fs.watch because certificate tools replace files by rename, which loses inotify
 * watches, and the files are a few kilobytes. A set of files that does not validate (half
 * written, key not matching the certificate, SVID not chaining to the bundle) is reported once
 * and the last good identity stays. If the first load fails, `ready()` rejects with the reason
 * (the agent refuses to start); polling goes on, and a later good load clears the failure.
 */
import { createHash, createPrivateKey, KeyObject, X509Certificate } from 'node:crypto';
import { AgentError } from '../core/errors';
import { trustDomainName } from './id';
import { BaseX509Source, SourceOptions } from './source';
import { makeSvid, X509Context } from './svid';
import { assertEs256Key } from './token';
import { verifyX509Svid } from './verify';
import { certificatesFromDer, certificatesFromPem } from './x509';

/** fs/promises's readFile, loaded on first use: node:fs/promises loads node:readline too. */
export const readFileAsync = (file: string): Promise<Buffer> => (require('node:fs/promises') as typeof import('node:fs/promises')).readFile(file);

export interface FilesOptions extends SourceOptions {
  cert: string;
  key: string;
  bundle: string;
  /** Trust domain (`td` or `spiffe://td`) → bundle file. */
  federated?: Record<string, string>;
  /** How often to look for changes, ms (default 5000). */
  pollMs?: number;
  /** The time used to check validity (default Date.now). */
  now?: () => number;
}

const isPem = (b: Buffer) => b.includes('-----BEGIN');

/** Certificates from PEM or concatenated DER. */
export function parseCertificates(buf: Buffer): X509Certificate[] {
  return isPem(buf) ? certificatesFromPem(buf.toString('utf8')) : certificatesFromDer(buf);
}

/** A private key from PEM (any kind) or DER (PKCS#8, then SEC1). */
export function parsePrivateKey(buf: Buffer): KeyObject {
  if (isPem(buf)) return createPrivateKey(buf);
  try {
    return createPrivateKey({ key: buf, format: 'der', type: 'pkcs8' });
  } catch {
    return createPrivateKey({ key: buf, format: 'der', type: 'sec1' });
  }
}

/**
 * A bundle: PEM or DER certificates, or a SPIFFE bundle (RFC 7517 JWK set) whose X.509
 * authorities are the `x5c[0]` of keys with `use: "x509-svid"` (others are ignored).
 */
export function parseBundle(buf: Buffer): X509Certificate[] {
  const text = buf.toString('utf8').trim();
  if (text.startsWith('{')) {
    const doc = JSON.parse(text) as { keys?: unknown };
    if (!Array.isArray(doc.keys)) throw new Error('a SPIFFE bundle needs a "keys" array');
    const out: X509Certificate[] = [];
    for (const k of doc.keys as { use?: unknown; x5c?: unknown }[]) {
      if (k?.use !== 'x509-svid') continue;
      const first = Array.isArray(k.x5c) ? k.x5c[0] : undefined;
      if (typeof first !== 'string') throw new Error('an x509-svid key needs an x5c certificate');
      out.push(new X509Certificate(Buffer.from(first, 'base64')));
    }
    return out;
  }
  return parseCertificates(buf);
}

export class FileX509Source extends BaseX509Source {
  readonly kind = 'files' as const;
  private timer: NodeJS.Timeout | undefined;
  private lastSeen: string | undefined;
  private polling: Promise<void> | undefined;
  private loadedOnce = false;

  constructor(private readonly files: FilesOptions) {
    super(files);
    this.polling = this.poll();
    this.timer = setInterval(() => {
      if (!this.polling) this.polling = this.poll();
    }, files.pollMs ?? 5000);
    this.timer.unref();
  }

  private async poll(): Promise<void> {
    try {
      await this.load();
    } finally {
      this.polling = undefined;
    }
  }

  private async load(): Promise<void> {
    const names: [string, string][] = [
      ['cert', this.files.cert],
      ['key', this.files.key],
      ['bundle', this.files.bundle],
      ...Object.entries(this.files.federated ?? {}).map(([td, f]): [string, string] => [`federated ${td}`, f]),
    ];
    const read = await Promise.allSettled(names.map(([, f]) => readFileAsync(f)));
    const failed = read.findIndex((r) => r.status === 'rejected'); // the first in config order
    if (failed >= 0) {
      const r = read[failed] as PromiseRejectedResult;
      this.problem(`identity ${names[failed]?.[0]} file: ${(r.reason as Error).message}`, 'missing');
      return;
    }
    const contents = read.map((r) => (r as PromiseFulfilledResult<Buffer>).value);
    if (this.closed) return;
    const hash = createHash('sha256');
    for (const c of contents) hash.update(createHash('sha256').update(c).digest());
    const digest = hash.digest('hex');
    if (digest === this.lastSeen) return; // unchanged since the last attempt (good or bad)
    this.lastSeen = digest;
    try {
      const ctx = this.build(names, contents);
      if (!this.opts.anyKeyType) assertEs256Key(ctx.svids[0]!.key, `${this.files.key}: the SVID key`);
      this.accept(ctx);
      this.loadedOnce = true;
    } catch (err) {
      this.problem((err as Error).message, digest);
    }
  }

  private build(names: [string, string][], contents: Buffer[]): X509Context {
    const at = (i: number): [string, Buffer] => [names[i]?.[1] ?? '', contents[i] ?? Buffer.alloc(0)];
    const parse = <T>(i: number, fn: (b: Buffer) => T): T => {
      const [file, buf] = at(i);
      try {
        return fn(buf);
      } catch (err) {
        throw new AgentError('INVALID_ARGUMENT', `${file}: ${(err as Error).message}`);
      }
    };
    const chain = parse(0, parseCertificates);
    const key = parse(1, parsePrivateKey);
    let svid;
    try {
      svid = makeSvid(chain, key);
    } catch (err) {
      throw new AgentError('INVALID_ARGUMENT', `${this.files.cert}: ${(err as Error).message}`);
    }
    const own = parse(2, parseBundle);
    if (!own.length) throw new AgentError('INVALID_ARGUMENT', `${this.files.bundle}: no CA certificates`);
    const bundles = new Map<string, readonly X509Certificate[]>([[svid.trustDomain, own]]);
    Object.keys(this.files.federated ?? {}).forEach((key, j) => {
      const td = trustDomainName(key);
      const certs = parse(3 + j, parseBundle);
      if (td === svid.trustDomain) throw new AgentError('INVALID_ARGUMENT', `federated bundle ${key} names the own trust domain`);
      bundles.set(td, certs);
    });
    try {
      verifyX509Svid(svid.chain, bundles, (this.files.now ?? Date.now)());
    } catch (err) {
      throw new AgentError('INVALID_ARGUMENT', `${this.files.cert} does not verify against ${this.files.bundle}: ${(err as Error).message}`);
    }
    return { svids: [svid], bundles };
  }

  private problem(message: string, digest: string): void {
    const err = new AgentError('INVALID_ARGUMENT', message);
    if (digest === 'missing') {
      // Reported once per distinct failure, not every poll.
      if (this.lastSeen === `missing:${message}`) return;
      this.lastSeen = `missing:${message}`;
    }
    if (this.loadedOnce) this.report(err);
    else this.fail(err);
  }

  /** Reloads now instead of waiting for the next poll; resolves when done. */
  async reload(): Promise<void> {
    while (this.polling) await this.polling;
    this.polling = this.poll();
    await this.polling;
  }

  async close(): Promise<void> {
    this.markClosed();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    while (this.polling) await this.polling;
  }
}
