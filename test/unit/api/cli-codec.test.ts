/**
 * The CLI's descriptor-driven codec (src/api/codec.ts) against protobufjs as the agent's grpc-js
 * servers use it (proto-loader's serializers with LOADER_OPTIONS): for every method of every
 * service, request and response, the same bytes from the same object and the same object
 * (keys in the same order) from the same bytes.
 */
import { describe, it, expect } from 'vitest';
import * as protoLoader from '@grpc/proto-loader';
import { LOADER_OPTIONS } from '../../../src/api';
import { parseProtos } from '../../../src/api/descriptor';
import { Codecs, decodeMessage, encodeMessage, reshapeMessage, type DescriptorNode, type MessageType } from '../../../src/api/codec';

const json = parseProtos();
const defs = protoLoader.fromJSON(json, LOADER_OPTIONS);
const codecs = new Codecs(json as DescriptorNode);

/** A value for every field (two of each repeated and map entry), `depth` messages deep. */
function sample(t: MessageType, depth: number, seed: number): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  const one = (f: MessageType['fields'][number], i: number): unknown => {
    const n = seed + f.id * 7 + i;
    switch (f.kind) {
      case 'message':
        return depth > 0 ? sample(f.messageType!, depth - 1, n) : {};
      case 'enum':
        return Object.keys((f as any).enumType.byName)[n % Object.keys((f as any).enumType.byName).length];
      case 'string':
        return `s${n}-é`;
      case 'bool':
        return n % 2 === 1;
      case 'int32':
        return -n;
      case 'uint32':
        return n * 1000;
      case 'int64':
        return String(-n * 1e12);
      case 'uint64':
        return String(n * 1e12);
      case 'double':
        return n + 0.5;
      case 'bytes':
        return Buffer.from([n, 0, 255]);
      default:
        return n;
    }
  };
  for (const f of t.fields) {
    if (f.keyType) o[f.name] = { [`k${seed}`]: one(f, 0), [`j${seed}`]: one(f, 1) };
    else if (f.repeated) o[f.name] = [one(f, 0), one(f, 1)];
    else o[f.name] = one(f, 0);
  }
  return o;
}

const methods: [string, string][] = [];
for (const [name, def] of Object.entries(defs)) {
  if ('format' in def || 'type' in def) continue; // messages and enums
  for (const m of Object.keys(def)) methods.push([name, m]);
}

describe('descriptor-driven protobuf codec', () => {
  it('covers the agent control API and the registry', () => {
    expect(methods).toContainEqual(['nsmagent.v1.Agent', 'Status']);
    expect(methods).toContainEqual(['registry.NetworkServiceEndpointRegistry', 'Find']);
  });

  it.each(methods)('%s/%s: same bytes and objects as protobufjs', (service, method) => {
    const def = (defs[service] as protoLoader.ServiceDefinition)[method]!;
    const c = codecs.method(service, method)!;
    const sides = [
      { t: c.req, ser: def.requestSerialize, de: def.requestDeserialize },
      { t: c.res, ser: def.responseSerialize, de: def.responseDeserialize },
    ];
    for (const { t, ser, de } of sides) {
      for (const obj of [{}, sample(t, 0, 1), sample(t, 3, 5)]) {
        const theirs = ser(obj);
        expect(Buffer.from(encodeMessage(t, obj)).equals(theirs), `${t.fullName} encode`).toBe(true);
        const ours = decodeMessage(t, theirs);
        expect(ours).toEqual(de(theirs));
        expect(JSON.stringify(ours)).toBe(JSON.stringify(de(theirs))); // key order too
        // the round trip without the bytes gives the same object, keys in the same order
        expect(reshapeMessage(t, obj)).toEqual(ours);
        expect(JSON.stringify(reshapeMessage(t, obj))).toBe(JSON.stringify(ours));
      }
    }
  });

  it('encodes fields set to their defaults, as protobufjs does', () => {
    const t = codecs.method('nsmagent.v1.Agent', 'Connect')!.req;
    const obj = { url: 'kernel://a/nsm-1', netns: 'host', id: '' };
    const def = (defs['nsmagent.v1.Agent'] as protoLoader.ServiceDefinition)['Connect']!;
    expect(Buffer.from(encodeMessage(t, obj)).equals(def.requestSerialize(obj))).toBe(true);
  });

  it('reshapes what the encoder converts or leaves out as the round trip through the bytes does', () => {
    const c = codecs.method('nsmagent.v1.Agent', 'Status')!.res;
    const status = sample(c, 3, 9);
    const conn = (status['connections'] as Record<string, unknown>[])[0]!;
    const inner = conn['connection'] as Record<string, unknown>;
    const withConn = (c: Record<string, unknown>, traffic: Record<string, unknown> = {}) => ({ ...status, connections: [{ ...conn, connection: { ...inner, ...c }, traffic }] });
    const odd: Record<string, unknown>[] = [
      { ...status, name: 'a\uD800b', version: '\uD83D\uDE00', started: null, registry_health: undefined },
      withConn({ state: 'NO_SUCH_STATE' }),
      withConn({ state: 2, labels: { a: 1, b: null } }),
      withConn({ labels: {}, path: { path_segments: [] } }),
      withConn({ id: 42, payload: true }, { side: 7, rx_bytes: 1.9e12, tx_bytes: '-3', rx_packets: 2.7 }),
    ];
    for (const obj of odd) {
      const roundTrip = decodeMessage(c, Buffer.from(encodeMessage(c, obj)));
      expect(JSON.stringify(reshapeMessage(c, obj))).toBe(JSON.stringify(roundTrip));
    }
    // each message type that has a oneof: two of its members set, the later one kept
    for (const [service, method] of methods) {
      for (const t of [codecs.method(service, method)!.req, codecs.method(service, method)!.res]) {
        const obj = sample(t, 2, 4);
        expect(JSON.stringify(reshapeMessage(t, obj))).toBe(JSON.stringify(decodeMessage(t, Buffer.from(encodeMessage(t, obj)))));
      }
    }
    expect(() => reshapeMessage(c, { connections: 'x' })).toThrow(TypeError);
  });

  it('refuses truncated input', () => {
    const t = codecs.method('nsmagent.v1.Agent', 'Status')!.res;
    const bytes = Buffer.from(encodeMessage(t, sample(t, 2, 3)));
    expect(() => decodeMessage(t, bytes.subarray(0, bytes.length - 3))).toThrow(RangeError);
  });
});
