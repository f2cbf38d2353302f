/**
 * Logging to journald with fields: when the agent's stderr is journald's stream (systemd sets
 * $JOURNAL_STREAM to its device:inode), each entry is sent over journald's native protocol
 * (one datagram of KEY=value fields to /run/systemd/journal/socket), so that
 * `journalctl NETWORK_SERVICE=x` or `CONNECTION_ID=...` or `CODE=...` finds the agent's lines.
 * MESSAGE still reads as the stderr line does. A datagram journald refuses (too large, socket
 * gone) is written to stderr instead.
 */
import { fstatSync } from 'node:fs';
import { AgentError } from '../core/errors';
import { format, PRIORITY, type Fields, type Level, type Sink } from '../core/log';
import * as sys from '../sys';

export const JOURNAL_SOCKET = '/run/systemd/journal/socket';

/** True when stderr is the journal stream systemd connected ($JOURNAL_STREAM matches fd 2). */
export function stderrIsJournal(env: NodeJS.ProcessEnv = process.env): boolean {
  const stream = env['JOURNAL_STREAM'];
  if (!stream) return false;
  try {
    const st = fstatSync(2);
    return stream === `${st.dev}:${st.ino}`;
  } catch {
    return false;
  }
}

/** A journal field name: upper case letters, digits and underscores, starting with a letter. */
export function fieldName(key: string): string {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toUpperCase()
    .replace(/[^A-Z0-9_]/g, '_')
    .replace(/^[^A-Z]+/, '')
    .slice(0, 64);
}

function text(v: unknown): string {
  if (v instanceof Error) return v.message;
  if (typeof v === 'string') return v;
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

const CONNECTION_KEYS = ['connectionId', 'connection_id', 'clientId', 'id'];
const SERVICE_KEYS = ['networkService', 'network_service', 'service'];

/** The journal fields of one entry, in order. */
export function journalFields(level: Level, msg: string, fields: Fields, identifier = 'nsm-agent'): [string, string][] {
  const out: [string, string][] = [
    ['MESSAGE', format(level, msg, fields).replace(/^<\d>level=\w+ msg=/, '')],
    ['PRIORITY', String(PRIORITY[level])],
    ['SYSLOG_IDENTIFIER', identifier],
  ];
  const seen = new Set(out.map(([k]) => k));
  const add = (k: string, v: string) => {
    if (!k || seen.has(k)) return;
    seen.add(k);
    out.push([k, v]);
  };
  const first = (keys: string[]) => keys.map((k) => fields[k]).find((v) => v !== undefined && v !== '');
  const conn = first(CONNECTION_KEYS);
  if (conn !== undefined) add('CONNECTION_ID', text(conn));
  const service = first(SERVICE_KEYS);
  if (service !== undefined) add('NETWORK_SERVICE', text(service));
  const code = fields['code'] ?? (fields['error'] instanceof AgentError ? fields['error'].code : undefined);
  if (code !== undefined) add('CODE', text(code));
  for (const [k, v] of Object.entries(fields)) {
    if (v !== undefined) add(fieldName(k), text(v));
  }
  return out;
}

/** The native protocol's datagram: KEY=value lines, or KEY, length (u64 LE) and value for values with newlines. */
export function encodeEntry(fields: [string, string][]): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of fields) {
    if (!v.includes('\n')) {
      parts.push(Buffer.from(`${k}=${v}\n`));
      continue;
    }
    const value = Buffer.from(v);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(value.length));
    parts.push(Buffer.from(`${k}\n`), len, value, Buffer.from('\n'));
  }
  return Buffer.concat(parts);
}

/** A log sink sending entries to journald, falling back to a stderr line. */
export function journaldSink(opts: { socket?: string; send?: (path: string, data: Buffer) => void; fallback?: (line: string) => void } = {}): Sink {
  const socket = opts.socket ?? JOURNAL_SOCKET;
  const send = opts.send ?? sys.sendDatagram;
  const fallback = opts.fallback ?? ((line: string) => process.stderr.write(line + '\n'));
  return (level, msg, fields) => {
    try {
      send(socket, encodeEntry(journalFields(level, msg, fields)));
    } catch {
      fallback(format(level, msg, fields));
    }
  };
}
