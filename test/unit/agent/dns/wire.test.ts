import * as packet from 'dns-packet';
import { describe, expect, it } from 'vitest';

import { readPlainQuery, ttlMap } from '../../../../src/agent/dns/wire';

const query = (name: string, extra: Partial<packet.Packet> = {}): Buffer =>
  packet.encode({ type: 'query', id: 7, flags: packet.RECURSION_DESIRED, questions: [{ type: 'AAAA', class: 'IN', name }], ...extra });

describe('readPlainQuery', () => {
  it('reads the question of a plain query, with or without EDNS', () => {
    expect(readPlainQuery(query('db.My.Service'))).toMatchObject({ name: 'db.My.Service', type: 28, class: 1 });
    const edns = query('a.b', { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, options: [{ code: 10, data: Buffer.alloc(8) }] } as never] });
    const q = readPlainQuery(edns)!;
    expect(q.name).toBe('a.b');
    expect(edns.subarray(12, q.end)).toEqual(query('a.b').subarray(12));
  });

  it('leaves to the general path what it does not recognise', () => {
    // two questions, an answer record, a label with a dot in it, a truncated OPT, garbage
    const two = packet.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'a' }, { type: 'A', name: 'b' }] });
    expect(readPlainQuery(two)).toBeUndefined();
    expect(readPlainQuery(packet.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'a' }], answers: [{ type: 'A', name: 'a', data: '1.2.3.4' }] }))).toBeUndefined();
    expect(readPlainQuery(query('a\\.b.c'))).toBeUndefined();
    const edns = query('a.b', { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, options: [] } as never] });
    expect(readPlainQuery(edns.subarray(0, edns.length - 3))).toBeUndefined();
    expect(readPlainQuery(Buffer.from('0001000000010000000000000563', 'hex'))).toBeUndefined();
  });
});

describe('ttlMap', () => {
  it('finds every TTL but OPT, and the smallest in the answer section', () => {
    const raw = packet.encode({
      type: 'response', id: 1, flags: packet.RECURSION_DESIRED,
      questions: [{ type: 'A', class: 'IN', name: 'x.svc' }],
      answers: [
        { type: 'CNAME', class: 'IN', name: 'x.svc', ttl: 90, data: 'y.svc' },
        { type: 'A', class: 'IN', name: 'y.svc', ttl: 30, data: '10.0.0.1' },
      ],
      authorities: [{ type: 'NS', class: 'IN', name: 'svc', ttl: 5, data: 'ns.svc' }],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232 } as never],
    });
    const m = ttlMap(raw)!;
    expect(m.answers).toBe(2);
    expect(m.minAnswerTtl).toBe(30);
    expect(m.offsets.map((o) => raw.readUInt32BE(o))).toEqual([90, 30, 5]);
  });

  it('is undefined for records that run past the end', () => {
    const raw = packet.encode({ type: 'response', id: 1, questions: [{ type: 'A', name: 'x' }], answers: [{ type: 'A', name: 'x', ttl: 9, data: '1.1.1.1' }] });
    expect(ttlMap(raw.subarray(0, raw.length - 2))).toBeUndefined();
  });
});
