/**
 * A minimal ASN.1 DER encoder and reader: just what building and inspecting X.509 SVIDs needs
 * (Node can parse certificates but neither create them nor show keyUsage bits or raw SANs).
 *
 * Contract: the encoder produces DER (definite minimal lengths); the reader accepts only
 * definite lengths, refuses lengths past the end of the input, and never allocates copies
 * (values are subarrays of the input).
 */

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

// ---------------------------------------------------------------------------------------
// Encoding

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One TLV with the given tag byte and content. */
export function tlv(tag: number, content: Buffer | Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([tag]), length(content.length), content]);
}

export const seq = (...items: Buffer[]): Buffer => tlv(TAG.SEQUENCE, Buffer.concat(items));
/** A SET; DER wants the elements sorted by their encodings. */
export const set = (...items: Buffer[]): Buffer => tlv(TAG.SET, Buffer.concat([...items].sort(Buffer.compare)));
export const bool = (v: boolean): Buffer => tlv(TAG.BOOLEAN, Buffer.from([v ? 0xff : 0x00]));
export const nul = (): Buffer => tlv(TAG.NULL, Buffer.alloc(0));
export const octets = (b: Buffer | Uint8Array): Buffer => tlv(TAG.OCTET_STRING, b);
export const utf8 = (s: string): Buffer => tlv(TAG.UTF8_STRING, Buffer.from(s, 'utf8'));
export const printable = (s: string): Buffer => tlv(TAG.PRINTABLE_STRING, Buffer.from(s, 'ascii'));
/** Context-specific constructed [n] (EXPLICIT tagging). */
export const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner);
/** Context-specific primitive [n] (IMPLICIT tagging of a primitive type). */
export const implicit = (n: number, content: Buffer | Uint8Array): Buffer => tlv(0x80 | n, content);

/** An unsigned big-endian integer (a serial number, say) as a DER INTEGER. */
export function uint(bytes: Buffer | Uint8Array | number): Buffer {
  let b: Buffer;
  if (typeof bytes === 'number') {
    const hex = Math.floor(bytes).toString(16);
    b = Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
  } else {
    b = Buffer.from(bytes);
  }
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  b = b.subarray(i);
  if (b.length === 0) b = Buffer.from([0]);
  if ((b[0] ?? 0) & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return tlv(TAG.INTEGER, b);
}

/** A BIT STRING holding whole bytes (signatures, keys): zero unused bits. */
export const bitString = (b: Buffer | Uint8Array): Buffer => tlv(TAG.BIT_STRING, Buffer.concat([Buffer.from([0]), b]));

/**
 * A named-bit BIT STRING (keyUsage): bit 0 is the most significant bit of the first byte.
 * DER drops trailing zero bits, and the first content byte counts the unused bits.
 */
export function namedBits(bits: number[]): Buffer {
  if (bits.length === 0) return tlv(TAG.BIT_STRING, Buffer.from([0]));
  const highest = Math.max(...bits);
  const bytes = Buffer.alloc(Math.floor(highest / 8) + 1);
  for (const bit of bits) bytes[bit >> 3] = (bytes[bit >> 3] ?? 0) | (0x80 >> (bit & 7));
  const unused = 7 - (highest & 7);
  return tlv(TAG.BIT_STRING, Buffer.concat([Buffer.from([unused]), bytes]));
}

export function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map((p) => {
    if (!/^\d+$/.test(p)) throw new Error(`bad OID ${dotted}`);
    return Number(p);
  });
  const [a, b, ...rest] = parts;
  if (a === undefined || b === undefined) throw new Error(`bad OID ${dotted}`);
  const out: number[] = [];
  for (const v of [a * 40 + b, ...rest]) {
    const chunk: number[] = [v & 0x7f];
    for (let x = Math.floor(v / 128); x > 0; x = Math.floor(x / 128)) chunk.unshift(0x80 | (x & 0x7f));
    out.push(...chunk);
  }
  return tlv(TAG.OID, Buffer.from(out));
}

/** UTCTime for 1950–2049, GeneralizedTime otherwise (RFC 5280 §4.1.2.5); whole seconds, UTC. */
export function time(ms: number): Buffer {
  const d = new Date(Math.floor(ms / 1000) * 1000);
  const y = d.getUTCFullYear();
  const p = (n: number) => String(n).padStart(2, '0');
  const rest = `${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  if (y >= 1950 && y < 2050) return tlv(TAG.UTC_TIME, Buffer.from(`${p(y % 100)}${rest}`, 'ascii'));
  return tlv(TAG.GENERALIZED_TIME, Buffer.from(`${String(y).padStart(4, '0')}${rest}`, 'ascii'));
}

// ---------------------------------------------------------------------------------------
// Reading

export interface Node {
  tag: number;
  /** Content octets (a view into the input). */
  value: Buffer;
  /** The whole TLV (a view into the input). */
  raw: Buffer;
}

export class DerError extends Error {
  override readonly name = 'DerError';
}

/** Reads the TLV starting at `offset`. */
export function read(buf: Buffer, offset = 0): Node {
  if (offset + 2 > buf.length) throw new DerError('truncated DER');
  const tag = buf[offset] ?? 0;
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte DER tags are not supported');
  let len = buf[offset + 1] ?? 0;
  let head = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new DerError('unsupported DER length');
    if (offset + 2 + n > buf.length) throw new DerError('truncated DER');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (buf[offset + 2 + i] ?? 0);
    head += n;
  }
  const end = offset + head + len;
  if (end > buf.length) throw new DerError('DER length runs past the end of the data');
  return { tag, value: buf.subarray(offset + head, end), raw: buf.subarray(offset, end) };
}

/** The TLVs inside a constructed node (or a whole buffer of consecutive TLVs). */
export function children(content: Buffer): Node[] {
  const out: Node[] = [];
  for (let off = 0; off < content.length; ) {
    const n = read(content, off);
    out.push(n);
    off += n.raw.length;
  }
  return out;
}

/** Splits concatenated DER structures (a Workload API chain or bundle) into one Buffer each. */
export function splitConcatenated(buf: Buffer): Buffer[] {
  return children(buf).map((n) => {
    if (n.tag !== TAG.SEQUENCE) throw new DerError('expected a DER SEQUENCE');
    return Buffer.from(n.raw);
  });
}

export function readOid(n: Node): string {
  if (n.tag !== TAG.OID) throw new DerError('expected an OID');
  const parts: number[] = [];
  let v = 0;
  for (const byte of n.value) {
    v = v * 128 + (byte & 0x7f);
    if (!(byte & 0x80)) {
      if (parts.length === 0) parts.push(v < 80 ? Math.floor(v / 40) : 2, v < 80 ? v % 40 : v - 80);
      else parts.push(v);
      v = 0;
    }
  }
  return parts.join('.');
}

export function readBool(n: Node): boolean {
  if (n.tag !== TAG.BOOLEAN || n.value.length !== 1) throw new DerError('expected a BOOLEAN');
  return n.value[0] !== 0;
}

/** The set bit numbers of a named-bit BIT STRING (bit 0 = most significant of the first byte). */
export function readNamedBits(n: Node): number[] {
  if (n.tag !== TAG.BIT_STRING || n.value.length < 1) throw new DerError('expected a BIT STRING');
  const out: number[] = [];
  const bytes = n.value.subarray(1);
  for (let i = 0; i < bytes.length * 8; i++) if ((bytes[i >> 3] ?? 0) & (0x80 >> (i & 7))) out.push(i);
  return out;
}
