// Over 500 lines: encoder, decoder and the round trip between them of one wire format, which
// must change together.
/**
 * A protobuf codec driven by the JSON descriptor (src/api/descriptor.ts), for the CLI: it turns
 * plain objects into the bytes protobufjs's `Type.encode(Type.fromObject(o))` gives, and bytes
 * into the objects `Type.toObject(Type.decode(b), LOADER_OPTIONS)` gives (every field present,
 * 64-bit integers and enums as strings, message fields null when absent), which are what the
 * agent's grpc-js servers send and expect. It compiles nothing at run time, so that a command
 * starts without protobufjs; a unit test holds it to protobufjs on every message of the API.
 */

/** A namespace, message, enum or service of a protobufjs JSON descriptor. */
export interface DescriptorNode {
  nested?: Record<string, DescriptorNode>;
  fields?: Record<string, { type: string; id: number; rule?: string; keyType?: string; options?: Record<string, unknown> }>;
  oneofs?: Record<string, { oneof: string[] }>;
  values?: Record<string, number>;
  methods?: Record<string, { requestType: string; responseType: string; requestStream?: boolean; responseStream?: boolean }>;
}

const VARINT = 0;
const I64 = 1;
const LEN = 2;
const I32 = 5;

const SCALAR_WIRE: Record<string, number> = {
  double: I64, float: I32, int32: VARINT, uint32: VARINT, sint32: VARINT, fixed32: I32, sfixed32: I32,
  int64: VARINT, uint64: VARINT, sint64: VARINT, fixed64: I64, sfixed64: I64, bool: VARINT, string: LEN, bytes: LEN,
};
const LONG = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);

interface Field {
  name: string;
  id: number;
  /** Scalar type name, or 'enum' / 'message'. */
  kind: string;
  repeated: boolean;
  packed: boolean;
  keyType?: string;
  enumType?: EnumType;
  messageType?: MessageType;
  oneof?: string;
}
interface EnumType {
  byName: Record<string, number>;
  byNumber: Map<number, string>;
  first: string;
}
export interface MessageType {
  fullName: string;
  /** Sorted by field number, as protobufjs encodes and converts them. */
  fields: Field[];
  byId: Map<number, Field>;
}

/** The message and enum types of a descriptor, by full name, resolved on first use. */
export class Codecs {
  private messages = new Map<string, MessageType>();
  constructor(private readonly root: DescriptorNode) {}

  private node(fullName: string): DescriptorNode | undefined {
    let n: DescriptorNode | undefined = this.root;
    for (const part of fullName.split('.')) n = n?.nested?.[part];
    return n;
  }

  /** Resolves a type reference as protobuf does: from the innermost enclosing scope outwards. */
  private resolve(scope: string, ref: string): string {
    if (ref.startsWith('.')) return ref.slice(1);
    const parts = scope.split('.');
    for (let i = parts.length; i >= 0; i--) {
      const candidate = [...parts.slice(0, i), ref].filter(Boolean).join('.');
      if (this.node(candidate)) return candidate;
    }
    throw new Error(`no type ${ref} from ${scope}`);
  }

  /** The method's request and response types; `service` is a full name, e.g. nsmagent.v1.Agent. */
  method(service: string, method: string): { req: MessageType; res: MessageType; stream: boolean } | undefined {
    const m = this.node(service)?.methods?.[method];
    if (!m) return undefined;
    const scope = service.split('.').slice(0, -1).join('.');
    return { req: this.message(this.resolve(scope, m.requestType)), res: this.message(this.resolve(scope, m.responseType)), stream: !!m.responseStream };
  }

  message(fullName: string): MessageType {
    const known = this.messages.get(fullName);
    if (known) return known;
    const n = this.node(fullName);
    if (!n?.fields) throw new Error(`${fullName} is not a message`);
    const t: MessageType = { fullName, fields: [], byId: new Map() };
    this.messages.set(fullName, t); // before the fields: messages may refer to themselves
    const oneofOf = new Map<string, string>();
    for (const [o, { oneof }] of Object.entries(n.oneofs ?? {})) for (const f of oneof) oneofOf.set(f, o);
    for (const [name, f] of Object.entries(n.fields)) {
      const field: Field = { name, id: f.id, kind: f.type, repeated: f.rule === 'repeated', packed: false, keyType: f.keyType, oneof: oneofOf.get(name) };
      if (!(f.type in SCALAR_WIRE)) {
        const ref = this.resolve(fullName, f.type);
        const target = this.node(ref)!;
        if (target.values) {
          const byNumber = new Map<number, string>();
          for (const [k, v] of Object.entries(target.values)) if (!byNumber.has(v)) byNumber.set(v, k);
          field.kind = 'enum';
          field.enumType = { byName: target.values, byNumber, first: Object.keys(target.values)[0]! };
        } else {
          field.kind = 'message';
          field.messageType = this.message(ref);
        }
      }
      const wire = field.kind === 'enum' ? VARINT : SCALAR_WIRE[field.kind];
      field.packed = field.repeated && !field.keyType && wire !== undefined && wire !== LEN && f.options?.['packed'] !== false;
      t.fields.push(field);
    }
    t.fields.sort((a, b) => a.id - b.id);
    for (const f of t.fields) t.byId.set(f.id, f);
    return t;
  }
}

// ---- encoding ----

class Writer {
  private chunks: number[] = [];
  varint(v: bigint | number): void {
    let x = BigInt.asUintN(64, BigInt(v));
    while (x > 0x7fn) {
      this.chunks.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.chunks.push(Number(x));
  }
  tag(id: number, wire: number): void {
    this.varint((id << 3) | wire);
  }
  bytes(b: Uint8Array): void {
    this.varint(b.length);
    for (const x of b) this.chunks.push(x);
  }
  raw(b: Uint8Array): void {
    for (const x of b) this.chunks.push(x);
  }
  finish(): Uint8Array {
    return Uint8Array.from(this.chunks);
  }
}

function toLong(v: unknown): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') return BigInt(Math.trunc(v));
  return BigInt(String(v));
}

/** A scalar's value as protobufjs's fromObject converts it, then its bytes (without a tag). */
function writeScalar(w: Writer, kind: string, v: unknown): void {
  switch (kind) {
    case 'string':
      return w.bytes(Buffer.from(String(v), 'utf8'));
    case 'bytes':
      return w.bytes(typeof v === 'string' ? Buffer.from(v, 'base64') : Buffer.from(v as Uint8Array));
    case 'bool':
      return w.varint(v ? 1 : 0);
    case 'int32':
      return w.varint(Number(v) | 0);
    case 'uint32':
      return w.varint(Number(v) >>> 0);
    case 'sint32': {
      const n = Number(v) | 0;
      return w.varint(((n << 1) ^ (n >> 31)) >>> 0);
    }
    case 'int64':
    case 'uint64':
      return w.varint(toLong(v));
    case 'sint64': {
      const n = BigInt.asIntN(64, toLong(v));
      return w.varint(BigInt.asUintN(64, (n << 1n) ^ (n >> 63n)));
    }
    case 'fixed32':
    case 'sfixed32': {
      const b = Buffer.alloc(4);
      if (kind === 'fixed32') b.writeUInt32LE(Number(v) >>> 0);
      else b.writeInt32LE(Number(v) | 0);
      return w.raw(b);
    }
    case 'fixed64':
    case 'sfixed64': {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(BigInt.asUintN(64, toLong(v)));
      return w.raw(b);
    }
    case 'double': {
      const b = Buffer.alloc(8);
      b.writeDoubleLE(Number(v));
      return w.raw(b);
    }
    case 'float': {
      const b = Buffer.alloc(4);
      b.writeFloatLE(Number(v));
      return w.raw(b);
    }
  }
  throw new Error(`unsupported type ${kind}`);
}

/** An enum value given by name or number, as fromObject takes it; undefined: left unset. */
function enumNumber(f: Field, v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  return f.enumType!.byName[String(v)];
}

function writeValue(w: Writer, f: Field, v: unknown, id: number): void {
  if (f.kind === 'message') {
    if (typeof v !== 'object') throw new TypeError(`.${f.name}: object expected`);
    w.tag(id, LEN);
    w.bytes(encodeMessage(f.messageType!, v as Record<string, unknown>));
  } else if (f.kind === 'enum') {
    const n = enumNumber(f, v);
    if (n === undefined) return;
    w.tag(id, VARINT);
    w.varint(n | 0);
  } else {
    w.tag(id, SCALAR_WIRE[f.kind]!);
    writeScalar(w, f.kind, v);
  }
}

/** The bytes of `obj` as protobufjs's `encode(fromObject(obj))` writes them. */
export function encodeMessage(t: MessageType, obj: Record<string, unknown>): Uint8Array {
  const w = new Writer();
  for (const f of t.fields) {
    const v = obj[f.name];
    if (v == null) continue;
    if (f.keyType) {
      if (typeof v !== 'object') throw new TypeError(`.${f.name}: object expected`);
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        const entry = new Writer();
        entry.tag(1, SCALAR_WIRE[f.keyType]!);
        writeScalar(entry, f.keyType, k);
        writeValue(entry, f, x, 2);
        w.tag(f.id, LEN);
        w.bytes(entry.finish());
      }
    } else if (f.repeated) {
      if (!Array.isArray(v)) throw new TypeError(`.${f.name}: array expected`);
      if (!v.length) continue;
      if (f.packed) {
        const p = new Writer();
        for (const x of v) {
          if (f.kind === 'enum') p.varint((enumNumber(f, x) ?? 0) | 0);
          else writeScalar(p, f.kind, x);
        }
        w.tag(f.id, LEN);
        w.bytes(p.finish());
      } else for (const x of v) writeValue(w, f, x, f.id);
    } else writeValue(w, f, v, f.id);
  }
  return w.finish();
}

// ---- decoding ----

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer, readonly end = buf.length) {}
  varint(): bigint {
    let x = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.end) throw new RangeError('index out of range');
      const b = this.buf[this.pos++]!;
      x |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return BigInt.asUintN(64, x);
      shift += 7n;
      if (shift > 63n) throw new Error('invalid varint encoding');
    }
  }
  take(n: number): Buffer {
    if (this.pos + n > this.end) throw new RangeError('index out of range');
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  skip(wire: number): void {
    if (wire === VARINT) this.varint();
    else if (wire === I64) this.take(8);
    else if (wire === LEN) this.take(Number(this.varint()));
    else if (wire === I32) this.take(4);
    else if (wire === 3) {
      for (;;) {
        const tag = Number(this.varint());
        if ((tag & 7) === 4) break;
        this.skip(tag & 7);
      }
    } else throw new Error(`invalid wire type ${wire}`);
  }
}

/** A scalar as protobufjs decodes it (64-bit ones as bigint until converted). */
function readScalar(r: Reader, kind: string): unknown {
  switch (kind) {
    case 'string':
      return r.take(Number(r.varint())).toString('utf8');
    case 'bytes':
      return Buffer.from(r.take(Number(r.varint())));
    case 'bool':
      return r.varint() !== 0n;
    case 'int32':
    case 'enum':
      return Number(BigInt.asIntN(32, r.varint()));
    case 'uint32':
      return Number(BigInt.asUintN(32, r.varint()));
    case 'sint32': {
      const n = Number(BigInt.asUintN(32, r.varint()));
      return (n >>> 1) ^ -(n & 1);
    }
    case 'int64':
      return BigInt.asIntN(64, r.varint());
    case 'uint64':
      return r.varint();
    case 'sint64': {
      const n = r.varint();
      return (n >> 1n) ^ -(n & 1n);
    }
    case 'fixed32':
      return r.take(4).readUInt32LE();
    case 'sfixed32':
      return r.take(4).readInt32LE();
    case 'fixed64':
      return r.take(8).readBigUInt64LE();
    case 'sfixed64':
      return r.take(8).readBigInt64LE();
    case 'double':
      return r.take(8).readDoubleLE();
    case 'float':
      return r.take(4).readFloatLE();
  }
  throw new Error(`unsupported type ${kind}`);
}

type Decoded = Record<string, unknown>;

function readValue(r: Reader, f: Field): unknown {
  if (f.kind === 'message') {
    const len = Number(r.varint());
    const sub = new Reader(r.buf, r.pos + len);
    if (sub.end > r.end) throw new RangeError('index out of range');
    sub.pos = r.pos;
    r.pos += len;
    return decodeFields(f.messageType!, sub);
  }
  return readScalar(r, f.kind);
}

function decodeFields(t: MessageType, r: Reader): Decoded {
  const m: Decoded = {};
  while (r.pos < r.end) {
    const tag = Number(r.varint());
    const f = t.byId.get(tag >>> 3);
    const wire = tag & 7;
    if (!f) {
      r.skip(wire);
      continue;
    }
    if (f.keyType) {
      const len = Number(r.varint());
      const e = new Reader(r.buf, r.pos + len);
      e.pos = r.pos;
      r.pos += len;
      let key: unknown = f.keyType === 'string' ? '' : LONG.has(f.keyType) ? 0n : f.keyType === 'bool' ? false : 0;
      let value: unknown = f.kind === 'message' ? {} : undefined;
      while (e.pos < e.end) {
        const t2 = Number(e.varint());
        if (t2 >>> 3 === 1) key = readScalar(e, f.keyType);
        else if (t2 >>> 3 === 2) value = readValue(e, f);
        else e.skip(t2 & 7);
      }
      const map = (m[f.name] ??= {}) as Record<string, unknown>;
      map[String(key)] = value ?? defaultScalar(f);
    } else if (f.repeated) {
      const list = (m[f.name] ??= []) as unknown[];
      if (wire === LEN && f.kind !== 'message' && f.kind !== 'string' && f.kind !== 'bytes') {
        const end = r.pos + Number(r.varint());
        const p = new Reader(r.buf, end);
        p.pos = r.pos;
        r.pos = end;
        while (p.pos < p.end) list.push(readScalar(p, f.kind));
      } else list.push(readValue(r, f));
    } else {
      m[f.name] = readValue(r, f);
      if (f.oneof) for (const other of t.fields) if (other.oneof === f.oneof && other !== f) delete m[other.name];
    }
  }
  return m;
}

function defaultScalar(f: Field): unknown {
  if (f.kind === 'enum') return 0;
  if (f.kind === 'string') return '';
  if (f.kind === 'bool') return false;
  if (f.kind === 'bytes') return Buffer.alloc(0);
  if (LONG.has(f.kind)) return 0n;
  return 0;
}

/** A decoded value in toObject's form: 64-bit integers and enums as strings, messages expanded. */
function convert(f: Field, v: unknown): unknown {
  if (f.kind === 'message') return toObject(f.messageType!, v as Decoded);
  if (f.kind === 'enum') return f.enumType!.byNumber.get(v as number) ?? v;
  if (typeof v === 'bigint') return v.toString();
  return v;
}

/** protobufjs's toObject with LOADER_OPTIONS (defaults, longs and enums as String, oneofs). */
function toObject(t: MessageType, m: Decoded): Record<string, unknown> {
  const d: Record<string, unknown> = {};
  for (const f of t.fields) if (f.repeated && !f.keyType) d[f.name] = [];
  for (const f of t.fields) if (f.keyType) d[f.name] = {};
  for (const f of t.fields) {
    if (f.repeated || f.keyType || f.oneof) continue;
    if (f.kind === 'message') d[f.name] = null;
    else if (f.kind === 'enum') d[f.name] = f.enumType!.first;
    else d[f.name] = convert(f, defaultScalar(f));
  }
  for (const f of t.fields) {
    const v = m[f.name];
    if (v === undefined) continue;
    if (f.keyType) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = convert(f, x);
      d[f.name] = out;
    } else if (f.repeated) d[f.name] = (v as unknown[]).map((x) => convert(f, x));
    else {
      d[f.name] = convert(f, v);
      if (f.oneof) d[f.oneof] = f.name;
    }
  }
  return d;
}

/** The object protobufjs's `toObject(decode(bytes), LOADER_OPTIONS)` gives. */
export function decodeMessage(t: MessageType, bytes: Buffer): Record<string, unknown> {
  return toObject(t, decodeFields(t, new Reader(bytes)));
}

// ---- the round trip without the bytes ----

/**
 * What `decodeMessage(t, encodeMessage(t, obj))` gives, worked out from `obj` without writing
 * and reading the bytes (which, for a large message, is most of the cost): each value is what
 * the decoder would read back from what the encoder would write, and what the encoder leaves
 * out (null, an enum name it does not know) is left out here too.
 */
export function reshapeMessage(t: MessageType, obj: Record<string, unknown>): Record<string, unknown> {
  return toObject(t, asDecoded(t, obj));
}

function asDecoded(t: MessageType, obj: Record<string, unknown>): Decoded {
  const m: Decoded = {};
  for (const f of t.fields) {
    const v = obj[f.name];
    if (v == null) continue;
    if (f.keyType) {
      if (typeof v !== 'object') throw new TypeError(`.${f.name}: object expected`);
      const entries = Object.entries(v as Record<string, unknown>);
      if (!entries.length) continue;
      const map: Record<string, unknown> = {};
      for (const [k, x] of entries) map[String(scalarAsRead(f.keyType, k))] = valueAsRead(f, x) ?? defaultScalar(f);
      m[f.name] = map;
    } else if (f.repeated) {
      if (!Array.isArray(v)) throw new TypeError(`.${f.name}: array expected`);
      const list: unknown[] = [];
      for (const x of v) {
        const read = f.packed && f.kind === 'enum' ? (enumNumber(f, x) ?? 0) | 0 : valueAsRead(f, x);
        if (read !== undefined) list.push(read);
      }
      if (list.length) m[f.name] = list;
    } else {
      const read = valueAsRead(f, v);
      if (read === undefined) continue;
      m[f.name] = read;
      if (f.oneof) for (const other of t.fields) if (other.oneof === f.oneof && other !== f) delete m[other.name];
    }
  }
  return m;
}

/** A field's value as decodeFields reads it back; undefined where the encoder writes nothing. */
function valueAsRead(f: Field, v: unknown): unknown {
  if (f.kind === 'message') {
    if (typeof v !== 'object') throw new TypeError(`.${f.name}: object expected`);
    return asDecoded(f.messageType!, v as Record<string, unknown>);
  }
  if (f.kind === 'enum') {
    const n = enumNumber(f, v);
    return n === undefined ? undefined : n | 0;
  }
  return scalarAsRead(f.kind, v);
}

const LONE_SURROGATE = /[\uD800-\uDFFF]/;

/** A scalar as readScalar reads back what writeScalar wrote; the common kinds without bytes. */
function scalarAsRead(kind: string, v: unknown): unknown {
  switch (kind) {
    case 'string':
      if (typeof v === 'string' && !LONE_SURROGATE.test(v)) return v; // encoded as UTF-8 and back unchanged
      break;
    case 'bool':
      return !!v;
    case 'int32':
      return Number(v) | 0;
    case 'uint32':
      return Number(v) >>> 0;
  }
  const w = new Writer();
  writeScalar(w, kind, v);
  return readScalar(new Reader(Buffer.from(w.finish())), kind);
}
