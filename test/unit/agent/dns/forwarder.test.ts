import { describe, it, expect } from 'vitest';
import * as packet from 'dns-packet';
import { Forwarder, RCODE, rcodeOf, type Exchange } from '../../../../src/agent/dns/forwarder';

const query = (name: string, type: 'A' | 'AAAA' | 'PTR' = 'A', id = 7) =>
  packet.encode({ type: 'query', id, flags: packet.RECURSION_DESIRED, questions: [{ type, class: 'IN', name }] });

/** A fake set of servers: zone[server][name] = address, or an rcode; 'dead' servers never answer. */
function servers(zones: Record<string, Record<string, string | number> | 'dead'>, log: string[] = []): Exchange {
  return async (server, q, timeoutMs) => {
    const p = packet.decode(q);
    const name = p.questions![0]!.name;
    log.push(`${server} ${name}`);
    const zone = zones[server];
    if (!zone || zone === 'dead') {
      await new Promise((r) => setTimeout(r, timeoutMs));
      throw new Error('timeout');
    }
    const v = zone[name];
    const rcode = typeof v === 'number' ? v : v === undefined ? RCODE.NXDOMAIN : RCODE.NOERROR;
    const answers = typeof v === 'string' ? [{ type: 'A' as const, name, ttl: 60, class: 'IN' as const, data: v }] : [];
    const out = packet.encode({ type: 'response', id: p.id, flags: packet.RECURSION_DESIRED | rcode, questions: p.questions, answers });
    return out;
  };
}

const answers = (b: Buffer | undefined) => packet.decode(b!).answers!.map((a) => `${a.name} ${String((a as { data?: unknown }).data)}`);

describe('the resolver forwarder', () => {
  it('asks every server, the name as asked first, then under each search domain; the answer keeps the name asked', async () => {
    const log: string[] = [];
    const fwd = new Forwarder({
      exchange: servers({ '10.0.0.1': { 'my.coredns.service': '172.16.1.100' }, '10.0.0.2': { 'default.only': '192.0.2.5' } }, log),
      upstreams: () => ({ servers: ['10.0.0.1', '10.0.0.2'], search: ['my.coredns.service'] }),
    });
    const a = await fwd.answer(query('my.coredns.service'));
    expect(a!.readUInt16BE(0)).toBe(7);
    expect(answers(a)).toEqual(['my.coredns.service 172.16.1.100']);
    expect(answers(await fwd.answer(query('default.only', 'A', 9)))).toEqual(['default.only 192.0.2.5']);
    // a short name found under a search domain, presented under the name asked
    const short = await fwd.answer(query('my', 'A', 11));
    expect(rcodeOf(short!)).toBe(RCODE.NXDOMAIN);
    log.length = 0;
    const fwd2 = new Forwarder({
      exchange: servers({ '10.0.0.1': { 'db.my.service': '172.16.1.7' } }, log),
      upstreams: () => ({ servers: ['10.0.0.1'], search: ['my.service'] }),
    });
    const db = await fwd2.answer(query('db', 'A', 12));
    expect(packet.decode(db!).questions![0]!.name).toBe('db');
    expect(answers(db)).toEqual(['db 172.16.1.7']);
    expect(log).toEqual(['10.0.0.1 db', '10.0.0.1 db.my.service']);
  });

  it('answers NXDOMAIN where every server says so, SERVFAIL within the timeout where one is dead', async () => {
    const nx = new Forwarder({ exchange: servers({ a: {}, b: {} }), upstreams: () => ({ servers: ['a', 'b'], search: ['x.y'] }) });
    const gone = await nx.answer(query('nothing.here'));
    expect(rcodeOf(gone!)).toBe(RCODE.NXDOMAIN);
    expect(packet.decode(gone!).questions![0]!.name).toBe('nothing.here');
    // NXDOMAIN for the name as asked from every server: the name does not exist, whatever the search domains' servers say
    const nxDeadSearch = new Forwarder({
      exchange: async (server, q, ms) => (server === 'b' && packet.decode(q).questions![0]!.name.endsWith('.x.y') ? servers({ b: 'dead' })(server, q, ms) : servers({ a: {}, b: {} })(server, q, ms)),
      upstreams: () => ({ servers: ['a', 'b'], search: ['x.y'] }),
      timeoutMs: 300,
    });
    expect(rcodeOf((await nxDeadSearch.answer(query('nothing.here')))!)).toBe(RCODE.NXDOMAIN);
    const dead = new Forwarder({ exchange: servers({ a: {}, b: 'dead' }), upstreams: () => ({ servers: ['a', 'b'], search: [] }), timeoutMs: 300 });
    const t0 = Date.now();
    const fail = await dead.answer(query('nothing.here'));
    expect(rcodeOf(fail!)).toBe(RCODE.SERVFAIL);
    expect(Date.now() - t0).toBeLessThan(1_000);
    // one live server with the name: the dead one does not delay it
    const live = new Forwarder({ exchange: servers({ a: { 'x.y': '1.2.3.4' }, b: 'dead' }), upstreams: () => ({ servers: ['b', 'a'], search: [] }), timeoutMs: 5_000 });
    const t1 = Date.now();
    expect(answers(await live.answer(query('x.y')))).toEqual(['x.y 1.2.3.4']);
    expect(Date.now() - t1).toBeLessThan(500);
  });

  it('caches positive answers for their TTL, counting it down', async () => {
    let now = 1_000_000;
    const log: string[] = [];
    const fwd = new Forwarder({ exchange: servers({ a: { 'x.y': '1.2.3.4' } }, log), upstreams: () => ({ servers: ['a'], search: [] }), now: () => now });
    await fwd.answer(query('x.y'));
    now += 20_000;
    const cached = await fwd.answer(query('X.Y', 'A', 99));
    expect(log).toEqual(['a x.y']);
    expect(cached!.readUInt16BE(0)).toBe(99);
    expect(packet.decode(cached!).answers![0]).toMatchObject({ ttl: 40, data: '1.2.3.4' });
    now += 41_000;
    await fwd.answer(query('x.y'));
    expect(log).toEqual(['a x.y', 'a x.y']);
  });

  it('drops short messages, responses and loops; FORMERR for what does not parse; never throws', async () => {
    let release = () => {};
    const slow: Exchange = (_s, q) =>
      new Promise((resolve) => {
        release = () => resolve(packet.encode({ ...packet.decode(q), type: 'response', answers: [] }));
      });
    const fwd = new Forwarder({ exchange: slow, upstreams: () => ({ servers: ['a'], search: [] }) });
    expect(await fwd.answer(Buffer.alloc(5))).toBeUndefined();
    const response = query('x.y');
    response[2]! |= 0x80;
    expect(await fwd.answer(response)).toBeUndefined();
    // truncated in the middle of the question
    const cut = query('name.example').subarray(0, 20);
    const formerr = await fwd.answer(cut);
    expect(rcodeOf(formerr!)).toBe(RCODE.FORMERR);
    expect(formerr!.readUInt16BE(0)).toBe(7);
    // garbage of every length, and a label pointing outside the message
    for (let n = 12; n < 300; n += 7) {
      const junk = Buffer.from(Array.from({ length: n }, (_, i) => (i * 37 + n) & 0xff));
      junk[2] = 0x01;
      junk[3] = 0;
      const out = await Promise.race([fwd.answer(junk), new Promise((r) => setTimeout(() => r('pending'), 50))]);
      expect(out === undefined || out === 'pending' || Buffer.isBuffer(out)).toBe(true);
    }
    // two questions
    const two = packet.encode({ type: 'query', id: 3, questions: [{ type: 'A', name: 'a.b' }, { type: 'A', name: 'c.d' }] });
    expect(rcodeOf((await fwd.answer(two))!)).toBe(RCODE.FORMERR);
    // an opcode other than QUERY
    const notify = query('x.y');
    notify[2]! |= 4 << 3;
    expect(rcodeOf((await fwd.answer(notify))!)).toBe(RCODE.NOTIMP);
    // the same query again while the first is being answered: a loop, dropped
    const first = fwd.answer(query('loop.test', 'A', 42));
    expect(await fwd.answer(query('loop.test', 'A', 42))).toBeUndefined();
    release();
    expect(rcodeOf((await first)!)).toBe(RCODE.NOERROR);
  });

  it('sends a big answer truncated (TC) over UDP, whole over TCP', async () => {
    const many: Exchange = async (_s, q) => {
      const p = packet.decode(q);
      const name = p.questions![0]!.name;
      const answers = Array.from({ length: 60 }, (_, i) => ({ type: 'A' as const, name, ttl: 60, class: 'IN' as const, data: `10.0.${i}.1` }));
      return packet.encode({ type: 'response', id: p.id, questions: p.questions, answers });
    };
    const fwd = new Forwarder({ exchange: many, upstreams: () => ({ servers: ['a'], search: [] }) });
    const udp = await fwd.answer(query('big.test'), 512);
    expect(udp!.length).toBeLessThanOrEqual(512);
    expect(udp!.readUInt16BE(2) & 0x0200).toBe(0x0200);
    expect(packet.decode(udp!).questions![0]!.name).toBe('big.test');
    fwd.flush();
    expect(packet.decode((await fwd.answer(query('big.test'), 65_535))!).answers).toHaveLength(60);
  });
});
