/**
 * `nsm-agent identity`: a small PKI for deployments without SPIRE. It makes the files that
 * `identity.source: files` reads, in SPIRE's certificate profile (src/spire/ca.ts):
 *
 *   create-ca --trust-domain TD --dir DIR [--ttl 8760h] [--force]
 *       DIR/ca.pem (the trust bundle to distribute) and DIR/ca.key (0600; keep it offline)
 *   issue --ca-dir DIR --id SPIFFE_ID --out DIR [--ttl 24h] [--dns NAME]... [--key-type T]
 *       OUT/svid.pem, OUT/svid.key (0600) and OUT/bundle.pem
 *   show FILE [--json]
 *       the certificates in a PEM or DER file: SPIFFE ID, validity, CA or leaf, key usages
 *
 * Runs without an agent. Exit codes as the rest of the CLI: 0 ok, 1 failure, 2 usage.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { AgentError, describeError } from '../../core/errors';
import { KeyType, LocalCa, writeAtomic } from '../../spire/ca';
import { parseCertificates } from '../../spire/files';
import { parseWorkloadId } from '../../spire/id';
import { inspect, KU, notAfter, notBefore, OID, toPem } from '../../spire/x509';
import { parseDuration } from '../config/duration';

export const IDENTITY_USAGE = `usage: nsm-agent identity <command> [options]

  create-ca --trust-domain TD --dir DIR [--ttl 8760h] [--force]
                          a trust domain CA: DIR/ca.pem (the bundle) and DIR/ca.key
  issue --ca-dir DIR --id SPIFFE_ID --out DIR [--ttl 24h] [--dns NAME]... [--key-type ec-p256|ec-p384|rsa-2048]
                          an X.509-SVID: OUT/svid.pem, OUT/svid.key, OUT/bundle.pem
                          (for identity.source: files; NSM tokens need ec-p256, the default)
  show FILE [--json]      the certificates in FILE (PEM or DER)`;

export interface IdentityIo {
  out: (text: string) => void;
  err: (text: string) => void;
  now?: () => number;
}

class Usage extends Error {}

const KEY_TYPES: KeyType[] = ['ec-p256', 'ec-p384', 'rsa-2048'];

function ttlOf(v: unknown, fallback: string): number {
  const text = typeof v === 'string' ? v : fallback;
  const ms = parseDuration(text);
  if (ms === undefined) throw new Usage(`--ttl ${text} is not a duration (e.g. 90m, 24h, 8760h)`);
  return ms;
}

function need(values: Record<string, unknown>, name: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new Usage(`--${name} is required`);
  return v;
}

const KU_NAMES: [number, string][] = [
  [KU.digitalSignature, 'digitalSignature'],
  [KU.contentCommitment, 'contentCommitment'],
  [KU.keyEncipherment, 'keyEncipherment'],
  [KU.dataEncipherment, 'dataEncipherment'],
  [KU.keyAgreement, 'keyAgreement'],
  [KU.keyCertSign, 'keyCertSign'],
  [KU.cRLSign, 'cRLSign'],
];
const EKU_NAMES: Record<string, string> = { [OID.serverAuth]: 'serverAuth', [OID.clientAuth]: 'clientAuth' };

export interface CertSummary {
  subject: string;
  issuer: string;
  spiffeIds: string[];
  dnsNames: string[];
  ca: boolean;
  notBefore: string;
  notAfter: string;
  /** 'valid', 'expired' or 'not yet valid' at the time of the call. */
  status: string;
  keyUsage: string[];
  extKeyUsage: string[];
  publicKey: string;
  serial: string;
  sha256: string;
}

/** What `show` prints, for each certificate of a file. */
export function summarize(file: string, now = Date.now()): CertSummary[] {
  const certs = parseCertificates(readFileSync(file));
  if (!certs.length) throw new AgentError('INVALID_ARGUMENT', `${file}: no certificates`);
  return certs.map((c) => {
    const info = inspect(c);
    const key = c.publicKey;
    const details = key.asymmetricKeyDetails;
    return {
      subject: c.subject.replace(/\n/g, ', '),
      issuer: c.issuer.replace(/\n/g, ', '),
      spiffeIds: info.uris.filter((u) => u.startsWith('spiffe://')),
      dnsNames: info.dnsNames,
      ca: info.isCa,
      notBefore: new Date(notBefore(c)).toISOString(),
      notAfter: new Date(notAfter(c)).toISOString(),
      status: now < notBefore(c) ? 'not yet valid' : now > notAfter(c) ? 'expired' : 'valid',
      keyUsage: KU_NAMES.filter(([bit]) => info.keyUsage?.includes(bit)).map(([, n]) => n),
      extKeyUsage: (info.extKeyUsage ?? []).map((o) => EKU_NAMES[o] ?? o),
      publicKey: key.asymmetricKeyType === 'ec' ? `EC ${details?.namedCurve}` : `${key.asymmetricKeyType?.toUpperCase()} ${details?.modulusLength ?? ''}`.trim(),
      serial: c.serialNumber,
      sha256: c.fingerprint256,
    };
  });
}

function printSummary(s: CertSummary[]): string {
  return s
    .map((c, i) =>
      [
        `certificate ${i + 1}${c.ca ? ' (CA)' : ''}`,
        `  spiffe id:  ${c.spiffeIds.join(', ') || '(none)'}`,
        ...(c.dnsNames.length ? [`  dns names:  ${c.dnsNames.join(', ')}`] : []),
        `  subject:    ${c.subject}`,
        `  issuer:     ${c.issuer}`,
        `  valid:      ${c.notBefore} .. ${c.notAfter} (${c.status})`,
        `  key usage:  ${c.keyUsage.join(', ') || '(none)'}${c.extKeyUsage.length ? `; ${c.extKeyUsage.join(', ')}` : ''}`,
        `  key:        ${c.publicKey}`,
        `  serial:     ${c.serial}`,
        `  sha256:     ${c.sha256}`,
      ].join('\n'),
    )
    .join('\n');
}

async function run(args: string[], io: IdentityIo): Promise<number> {
  const [sub, ...rest] = args;
  const now = io.now?.() ?? Date.now();
  const opts = {
    'trust-domain': { type: 'string' },
    dir: { type: 'string' },
    ttl: { type: 'string' },
    force: { type: 'boolean' },
    'ca-dir': { type: 'string' },
    id: { type: 'string' },
    out: { type: 'string' },
    dns: { type: 'string', multiple: true },
    'key-type': { type: 'string' },
    json: { type: 'boolean' },
  } as const;
  let parsed: ReturnType<typeof parseArgs<{ options: typeof opts; allowPositionals: true }>>;
  try {
    parsed = parseArgs({ args: rest, options: opts, allowPositionals: true });
  } catch (err) {
    throw new Usage((err as Error).message);
  }
  const { values, positionals } = parsed;
  switch (sub) {
    case 'create-ca': {
      if (positionals.length) throw new Usage('create-ca takes no positional arguments');
      const td = need(values, 'trust-domain');
      const dir = need(values, 'dir');
      if (LocalCa.exists(dir) && !values.force) {
        throw new AgentError('ALREADY_EXISTS', `${dir} already holds a CA (ca.pem, ca.key); --force replaces it, and every SVID it issued stops being trusted`);
      }
      const ca = LocalCa.create({ trustDomain: td.replace(/^spiffe:\/\//, ''), ttlMs: ttlOf(values.ttl, '8760h'), now });
      ca.save(dir);
      io.out(`created the CA of trust domain ${ca.trustDomain} in ${dir}: ca.pem (bundle, valid until ${new Date(ca.expiresAt).toISOString()}), ca.key`);
      return 0;
    }
    case 'issue': {
      if (positionals.length) throw new Usage('issue takes no positional arguments');
      const caDir = need(values, 'ca-dir');
      const id = need(values, 'id');
      const out = need(values, 'out');
      const keyType = (values['key-type'] ?? 'ec-p256') as KeyType;
      if (!KEY_TYPES.includes(keyType)) throw new Usage(`--key-type must be one of ${KEY_TYPES.join(', ')}`);
      parseWorkloadId(id);
      if (!existsSync(caDir)) throw new AgentError('NOT_FOUND', `no CA in ${caDir} (make one with nsm-agent identity create-ca)`);
      const ca = LocalCa.load(caDir);
      const svid = ca.issue(id, { ttlMs: ttlOf(values.ttl, '24h'), now, keyType, dnsNames: values.dns ?? [] });
      mkdirSync(out, { recursive: true, mode: 0o755 });
      writeAtomic(path.join(out, 'svid.key'), svid.key.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
      writeAtomic(path.join(out, 'svid.pem'), toPem(svid.chain), 0o644);
      writeAtomic(path.join(out, 'bundle.pem'), toPem(ca.bundle()), 0o644);
      io.out(`issued ${id}, valid until ${new Date(svid.expiresAt).toISOString()}: ${path.join(out, 'svid.pem')}, svid.key, bundle.pem`);
      if (keyType !== 'ec-p256') io.err(`note: NSM tokens are ES256; an agent cannot sign them with a ${keyType} key`);
      return 0;
    }
    case 'show': {
      const file = positionals[0];
      if (!file || positionals.length > 1) throw new Usage('show needs exactly one FILE');
      const s = summarize(file, now);
      io.out(values.json ? JSON.stringify(s, null, 2) : printSummary(s));
      return 0;
    }
    case undefined:
    case 'help':
    case '--help':
      io.out(IDENTITY_USAGE);
      return sub ? 0 : 2;
    default:
      throw new Usage(`unknown identity command ${sub}`);
  }
}

/** Runs `nsm-agent identity ARGS`; returns the exit code. Never throws. */
export async function runIdentity(args: string[], io: IdentityIo = { out: (t) => process.stdout.write(`${t}\n`), err: (t) => process.stderr.write(`${t}\n`) }): Promise<number> {
  try {
    return await run(args, io);
  } catch (err) {
    if (err instanceof Usage) {
      io.err(`nsm-agent identity: ${err.message}\n\n${IDENTITY_USAGE}`);
      return 2;
    }
    io.err(`nsm-agent identity: ${describeError(err)}`);
    return 1;
  }
}
