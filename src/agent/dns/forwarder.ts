/**
 * What the agent's resolver does with one DNS query, as upstream NSM's dnscontext resolver
 * chain does (checkmsg, dnsconfigs, searches, noloop, cache, fanout), without sockets:
 *
 * - checks: a message that is too short or is itself a response is dropped; one that does not
 *   parse, or has other than one question, gets FORMERR; opcodes other than QUERY get NOTIMP;
 * - noloop: a query (id, name, type) that arrives again while it is being answered is dropped;
 * - cache: positive answers (NOERROR with records) are kept for their smallest TTL (at most
 *   MAX_CACHE_TTL_S) and served with the TTLs counted down; CACHE_SIZE entries at most;
 * - searches: the name as asked first, then the name under each search domain (not for names
 *   already under that domain, nor for reverse lookups); the first NOERROR wins and comes back
 *   with the name as asked;
 * - fanout: each try goes to every server at once; the first NOERROR wins.
 *
 * Unlike upstream, where every server said NXDOMAIN to the name as asked and no search domain
 * found it, the answer is NXDOMAIN (the name does not exist), not SERVFAIL: the servers of one
 * search domain need not know the others'. Anything else that finds no answer (timeouts,
 * SERVFAIL, REFUSED) is SERVFAIL, within `timeoutMs` of the query's arrival.
 */
import type * as Packet from 'dns-packet';
import { lazyModule } from '../../core/lazy';
import { readPlainQuery, ttlMap } from './wire';

/** dns-packet, loaded by the first message that needs it: an agent whose connections carry no DNS never does. */
const packet = lazyModule(() => require('dns-packet') as typeof Packet);

/** Sends `query` to `server` (an IP address, port 53) and resolves with its answer. */
export type Exchange = (server: string, query: Buffer, timeoutMs: number) => Promise<Buffer>;

export interface Upstreams {
  /** IP addresses, every one asked at once. */
  servers: string[];
  /** Search domains, tried in order after the name as asked. */
  search: string[];
}

export interface ForwarderOptions {
  exchange: Exchange;
  upstreams: () => Upstreams;
  /** Whole-query deadline; each try waits at most TRY_MS of it. */
  timeoutMs?: number;
  now?: () => number;
}

const HEADER = 12;
const QR = 0x8000;
const TC = 0x0200;
const RD = 0x0100;
const RA = 0x0080;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
const DEFAULT_TIMEOUT_MS = 3_000;
const TRY_MS = 1_500;
const CACHE_SIZE = 1_000;
const MAX_CACHE_TTL_S = 300;
/** Queries answered at once; beyond, new ones are dropped (the client retries). */
const MAX_IN_FLIGHT = 1_000;

/** Where the question section of a message ends, or -1 if it does not parse (no compression in questions). */
export function questionEnd(msg: Buffer): number {
  let i = HEADER;
  for (let labels = 0; i < msg.length && labels <= 128; labels++) {
    const len = msg[i]!;
    if (len === 0) return i + 5 <= msg.length ? i + 5 : -1;
    if (len > 63) return -1;
    i += 1 + len;
  }
  return -1;
}

/** The rcode of a message (its header's low four bits of byte 3). */
export const rcodeOf = (msg: Buffer): number => msg[3]! & 0x0f;

/** An answer with only a header (and the query's question when it has one). */
export function headerAnswer(query: Buffer, rcode: number, extraFlags = 0): Buffer {
  const qEnd = query.length >= HEADER ? questionEnd(query) : -1;
  const qdcount = qEnd > 0 && query.readUInt16BE(4) >= 1 ? 1 : 0;
  const out = Buffer.alloc(HEADER + (qdcount ? qEnd - HEADER : 0));
  if (query.length >= 2) query.copy(out, 0, 0, 2);
  const flags = query.length >= 4 ? query.readUInt16BE(2) : 0;
  out.writeUInt16BE(QR | (flags & 0x7800) | (flags & RD) | RA | extraFlags | rcode, 2);
  out.writeUInt16BE(qdcount, 4);
  if (qdcount) query.copy(out, HEADER, HEADER, qEnd);
  return out;
}

interface Cached {
  raw: Buffer;
  /** Where raw's TTLs are (counted down when served). */
  ttlOffsets: number[];
  stored: number;
  expires: number;
}

/** A query decoded, with its one question. */
export type ParsedQuery = { decoded: Packet.DecodedPacket; question: Packet.Question };

/**
 * Reads a query as both of the agent's DNS servers take them: a response or something shorter
 * than a header is dropped (undefined); an opcode other than QUERY is NOTIMP, anything that does
 * not decode to exactly one question FORMERR (the answer, a Buffer).
 */
export function parseQuery(query: Buffer): ParsedQuery | Buffer | undefined {
  if (query.length < HEADER) return undefined;
  const flags = query.readUInt16BE(2);
  if (flags & QR) return undefined;
  if ((flags >> 11) & 0x0f) return headerAnswer(query, RCODE.NOTIMP);
  let decoded: Packet.DecodedPacket;
  try {
    decoded = packet.decode(query);
  } catch {
    return headerAnswer(query, RCODE.FORMERR);
  }
  const question = decoded.questions?.[0];
  if (decoded.questions?.length !== 1 || !question || questionEnd(query) < 0) return headerAnswer(query, RCODE.FORMERR);
  return { decoded, question };
}

export class Forwarder {
  private readonly cache = new Map<string, Cached>();
  private readonly inFlight = new Set<string>();
  private readonly timeoutMs: number;
  private readonly now: () => number;

  constructor(private readonly opts: ForwarderOptions) {
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.now = opts.now ?? Date.now;
  }

  /** Forgets cached answers (the servers or search domains changed). */
  flush(): void {
    this.cache.clear();
  }

  /**
   * The answer to `query`, at most `maxSize` bytes (a bigger one is sent truncated, TC set, so
   * the client asks again over TCP); undefined: drop the query, answer nothing.
   */
  async answer(query: Buffer, maxSize = 512): Promise<Buffer | undefined> {
    const asked = readQuery(query);
    if (asked === undefined || Buffer.isBuffer(asked)) return asked;
    const key = `${asked.name.toLowerCase()}|${asked.type}|${asked.class}`;
    const loopKey = `${query.readUInt16BE(0)}|${key}`;
    if (this.inFlight.has(loopKey) || this.inFlight.size >= MAX_IN_FLIGHT) return undefined;
    this.inFlight.add(loopKey);
    try {
      const out = (await this.resolve(query, asked, key)) ?? headerAnswer(query, RCODE.SERVFAIL);
      return out.length <= Math.max(512, maxSize) ? out : truncated(query, out);
    } finally {
      this.inFlight.delete(loopKey);
    }
  }

  private async resolve(query: Buffer, asked: AskedQuery, cacheKey: string): Promise<Buffer | undefined> {
    const hit = this.fromCache(cacheKey, query);
    if (hit) return hit;
    const { servers, search } = this.opts.upstreams();
    if (servers.length === 0) return undefined;
    const deadline = this.now() + this.timeoutMs;
    const name = asked.name.replace(/\.$/, '');
    const lower = name.toLowerCase();
    const reverse = /\.(in-addr|ip6)\.arpa$/.test(lower);
    const names = [name, ...(reverse ? [] : search.filter((d) => d && lower !== d.toLowerCase() && !lower.endsWith(`.${d.toLowerCase()}`)).map((d) => `${name}.${d}`))];
    let nx: Buffer | undefined;
    for (const variant of names) {
      const left = deadline - this.now();
      if (left <= 0) return undefined;
      const ask = variant === name ? query : withName(asked.decoded(), variant);
      if (!ask) continue;
      const got = await fanout(this.opts.exchange, servers, ask, Math.min(left, TRY_MS));
      if (got.ok) {
        const out = variant === name ? got.ok : renamed(got.ok, variant, asked.name);
        if (!out) return undefined;
        out.writeUInt16BE(query.readUInt16BE(0), 0);
        this.store(cacheKey, out);
        return out;
      }
      if (variant === name && got.allNx) nx = got.nx;
    }
    if (nx) {
      const out = Buffer.from(nx);
      out.writeUInt16BE(query.readUInt16BE(0), 0);
      return out;
    }
    return undefined;
  }

  /** A copy of the cached answer with the query's id and the TTLs counted down. */
  private fromCache(key: string, query: Buffer): Buffer | undefined {
    const c = this.cache.get(key);
    if (!c) return undefined;
    const now = this.now();
    if (now >= c.expires) {
      this.cache.delete(key);
      return undefined;
    }
    const out = Buffer.from(c.raw);
    out.writeUInt16BE(query.readUInt16BE(0), 0);
    const gone = Math.floor((now - c.stored) / 1000);
    if (gone > 0) for (const at of c.ttlOffsets) out.writeUInt32BE(Math.max(0, c.raw.readUInt32BE(at) - gone), at);
    return out;
  }

  private store(key: string, raw: Buffer): void {
    if (rcodeOf(raw) !== RCODE.NOERROR) return;
    const ttls = ttlMap(raw);
    if (!ttls || ttls.answers === 0) return;
    const ttl = ttls.minAnswerTtl;
    if (!(ttl > 0)) return;
    if (this.cache.size >= CACHE_SIZE) this.cache.delete(this.cache.keys().next().value!);
    const now = this.now();
    this.cache.set(key, { raw: Buffer.from(raw), ttlOffsets: ttls.offsets, stored: now, expires: now + Math.min(ttl, MAX_CACHE_TTL_S) * 1000 });
  }
}

/** A query as the forwarder needs it: its question, and the whole message decoded on demand. */
interface AskedQuery {
  name: string;
  type: number;
  class: number;
  decoded: () => Packet.DecodedPacket;
}

/**
 * parseQuery's outcome without decoding the common query (one question, at most EDNS): read
 * in place; anything else goes through parseQuery, so both paths accept and refuse alike.
 */
function readQuery(query: Buffer): AskedQuery | Buffer | undefined {
  if (query.length < HEADER) return undefined;
  const flags = query.readUInt16BE(2);
  if (flags & QR) return undefined;
  if ((flags >> 11) & 0x0f) return headerAnswer(query, RCODE.NOTIMP);
  const plain = readPlainQuery(query);
  if (plain) {
    let decoded: Packet.DecodedPacket | undefined;
    return { name: plain.name, type: plain.type, class: plain.class, decoded: () => (decoded ??= packet.decode(query)) };
  }
  const parsed = parseQuery(query);
  if (parsed === undefined || Buffer.isBuffer(parsed)) return parsed;
  const qEnd = questionEnd(query);
  return { name: parsed.question.name, type: query.readUInt16BE(qEnd - 4), class: query.readUInt16BE(qEnd - 2), decoded: () => parsed.decoded };
}

/** The query asking for `name` instead (same id, flags and additional records, e.g. EDNS). */
function withName(decoded: Packet.DecodedPacket, name: string): Buffer | undefined {
  try {
    return packet.encode({ ...decoded, questions: decoded.questions!.map((q) => ({ ...q, name })) });
  } catch {
    return undefined;
  }
}

/** An answer for `variant` presented as the answer for `asked`: question and owner names. */
function renamed(answer: Buffer, variant: string, asked: string): Buffer | undefined {
  try {
    const p = packet.decode(answer);
    const v = variant.toLowerCase();
    p.questions = (p.questions ?? []).map((q) => ({ ...q, name: asked }));
    for (const r of p.answers ?? []) if (r.name.toLowerCase() === v) r.name = asked;
    return packet.encode(p);
  } catch {
    return undefined;
  }
}

/** Header and question only, with TC set: the client should ask over TCP. */
function truncated(query: Buffer, answer: Buffer): Buffer {
  const out = headerAnswer(query, rcodeOf(answer), TC);
  out.writeUInt16BE(answer.readUInt16BE(2) | TC, 2);
  return out;
}

/** Asks every server at once: the first NOERROR, or (none) whether every server said NXDOMAIN. */
function fanout(exchange: Exchange, servers: string[], query: Buffer, timeoutMs: number): Promise<{ ok?: Buffer; allNx: boolean; nx?: Buffer }> {
  return new Promise((resolve) => {
    let left = servers.length;
    let allNx = true;
    let nx: Buffer | undefined;
    let done = false;
    for (const server of servers) {
      exchange(server, query, timeoutMs).then(
        (answer) => {
          if (done) return;
          const rcode = rcodeOf(answer);
          if (rcode === RCODE.NOERROR) {
            done = true;
            resolve({ ok: answer, allNx: false });
            return;
          }
          if (rcode === RCODE.NXDOMAIN) nx ??= answer;
          else allNx = false;
          if (--left === 0) resolve({ allNx, nx });
        },
        () => {
          if (done) return;
          allNx = false;
          if (--left === 0) resolve({ allNx, nx });
        },
      );
    }
  });
}
