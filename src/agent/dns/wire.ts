/**
 * DNS messages read in place (RFC 1035 section 4), for the resolver's common path: a query with
 * one question and at most EDNS in its additional section, and answers whose TTLs the cache
 * counts down. Anything these readers do not recognise returns undefined, and the caller takes
 * the general path (dns-packet), so they never decide that a message is malformed.
 */

const HEADER = 12;
const TYPE_OPT = 41;
const MAX_LABELS = 128;

/** A query's one question, read from its bytes. */
export interface QuestionRead {
  /** The name as asked, labels joined by '.', without the root dot; '' for the root. */
  name: string;
  type: number;
  class: number;
  /** Where the question section ends. */
  end: number;
}

/**
 * The question of a plain query: QDCOUNT 1, no answer or authority records, and additional
 * records that are only well-formed OPT (EDNS) records. Labels are plain (no compression, no
 * '.' or '\\' inside a label, so the name reads back unchanged); undefined otherwise.
 */
export function readPlainQuery(msg: Buffer): QuestionRead | undefined {
  if (msg.length < HEADER || msg.readUInt16BE(4) !== 1 || msg.readUInt16BE(6) !== 0 || msg.readUInt16BE(8) !== 0) return undefined;
  const labels: string[] = [];
  let i = HEADER;
  for (;;) {
    if (i >= msg.length || labels.length > MAX_LABELS) return undefined;
    const len = msg[i]!;
    if (len === 0) break;
    if (len > 63 || i + 1 + len > msg.length) return undefined;
    for (let j = i + 1; j <= i + len; j++) {
      const c = msg[j]!;
      if (c === 0x2e || c === 0x5c || c < 0x21 || c > 0x7e) return undefined;
    }
    labels.push(msg.toString('latin1', i + 1, i + 1 + len));
    i += 1 + len;
  }
  if (i + 5 > msg.length) return undefined;
  const type = msg.readUInt16BE(i + 1);
  const cls = msg.readUInt16BE(i + 3);
  const end = i + 5;
  let at = end;
  for (let n = msg.readUInt16BE(10); n > 0; n--) {
    // OPT: root owner name, TYPE 41, CLASS = payload size, TTL = flags, RDATA = options
    if (at + 11 > msg.length || msg[at] !== 0 || msg.readUInt16BE(at + 1) !== TYPE_OPT) return undefined;
    const rdEnd = at + 11 + msg.readUInt16BE(at + 9);
    if (rdEnd > msg.length) return undefined;
    let o = at + 11;
    while (o < rdEnd) {
      if (o + 4 > rdEnd) return undefined;
      o += 4 + msg.readUInt16BE(o + 2);
    }
    if (o !== rdEnd) return undefined;
    at = rdEnd;
  }
  return { name: labels.join('.'), type, class: cls, end };
}

/** Where a (possibly compressed) name starting at `i` ends, or -1. */
function skipName(msg: Buffer, i: number): number {
  for (let labels = 0; labels <= MAX_LABELS; labels++) {
    if (i >= msg.length) return -1;
    const len = msg[i]!;
    if (len === 0) return i + 1;
    if ((len & 0xc0) === 0xc0) return i + 2 <= msg.length ? i + 2 : -1;
    if (len > 63) return -1;
    i += 1 + len;
  }
  return -1;
}

/** Where the TTLs of an answer are, and the smallest TTL of its answer section. */
export interface TtlMap {
  /** Byte offsets of the TTL of every record but OPT. */
  offsets: number[];
  /** The smallest TTL in the answer section; Infinity when it has no records. */
  minAnswerTtl: number;
  answers: number;
}

/** Reads the TTL positions of a response; undefined if its records do not parse. */
export function ttlMap(msg: Buffer): TtlMap | undefined {
  if (msg.length < HEADER) return undefined;
  let i = HEADER;
  for (let n = msg.readUInt16BE(4); n > 0; n--) {
    i = skipName(msg, i);
    if (i < 0 || i + 4 > msg.length) return undefined;
    i += 4;
  }
  const answers = msg.readUInt16BE(6);
  const total = answers + msg.readUInt16BE(8) + msg.readUInt16BE(10);
  const offsets: number[] = [];
  let minAnswerTtl = Infinity;
  for (let r = 0; r < total; r++) {
    i = skipName(msg, i);
    if (i < 0 || i + 10 > msg.length) return undefined;
    const type = msg.readUInt16BE(i);
    const ttl = msg.readUInt32BE(i + 4);
    if (type !== TYPE_OPT) offsets.push(i + 4);
    if (r < answers) minAnswerTtl = Math.min(minAnswerTtl, ttl);
    i += 10 + msg.readUInt16BE(i + 8);
    if (i > msg.length) return undefined;
  }
  return { offsets, minAnswerTtl, answers };
}
