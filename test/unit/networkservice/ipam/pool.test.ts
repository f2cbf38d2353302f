import net from 'node:net';
import { describe, it, expect } from 'vitest';
import { AddressPool } from '../../../../src/networkservice/ipam/pool';
import { parsePrefix, formatIp, parseIp } from '../../../../src/networkservice/ipam/cidr';
import { isCode } from '../../../../src/core/errors';

const fmt = (pool: AddressPool, id: string) => pool.get(id)!.map((p) => [formatIp(p.family, p.dst), formatIp(p.family, p.src)]);

describe('point-to-point pool', () => {
  it('gives the first free address to the endpoint and the second to the client, network address included', () => {
    const pool = new AddressPool(['172.16.1.100/31']);
    pool.allocate('a', { src: [], dst: [] });
    expect(fmt(pool, 'a')).toEqual([['172.16.1.100', '172.16.1.101']]);
  });

  it('is exhausted with a clear error and recovers after release', () => {
    const pool = new AddressPool(['172.16.1.100/31']);
    pool.allocate('a', { src: [], dst: [] });
    let err: unknown;
    try {
      pool.allocate('b', { src: [], dst: [] });
    } catch (e) {
      err = e;
    }
    expect(isCode(err, 'POOL_EXHAUSTED')).toBe(true);
    expect(String((err as Error).message)).toMatch(/172\.16\.1\.100\/31 is exhausted/);
    pool.release('a');
    pool.allocate('b', { src: [], dst: [] });
    expect(fmt(pool, 'b')).toEqual([['172.16.1.100', '172.16.1.101']]);
  });

  it('returns the same pair to the same connection, and keeps wanted addresses when free', () => {
    const pool = new AddressPool(['10.0.0.0/29']);
    pool.allocate('a', { src: [], dst: [] });
    expect(pool.allocate('a', { src: [], dst: [] })).toBe(pool.get('a'));
    pool.allocate('b', { src: ['10.0.0.6/32'], dst: ['10.0.0.5/32'] });
    expect(fmt(pool, 'b')).toEqual([['10.0.0.5', '10.0.0.6']]);
    pool.allocate('c', { src: ['10.0.0.1/32'], dst: ['10.0.0.0/32'] }); // taken by a: fresh ones
    expect(fmt(pool, 'c')).toEqual([['10.0.0.2', '10.0.0.3']]);
  });

  it('skips excluded prefixes from config and from the request', () => {
    const pool = new AddressPool(['10.0.0.0/28'], [parsePrefix('10.0.0.0/30')!]);
    pool.allocate('a', { src: [], dst: [] }, ['10.0.0.4/31']);
    expect(fmt(pool, 'a')).toEqual([['10.0.0.6', '10.0.0.7']]);
  });

  it('allocates from IPv4 and IPv6 pools together', () => {
    const pool = new AddressPool(['10.0.0.0/30', 'fd00::/126']);
    pool.allocate('a', { src: [], dst: [] });
    expect(fmt(pool, 'a')).toEqual([
      ['10.0.0.0', '10.0.0.1'],
      ['fd00::', 'fd00::1'],
    ]);
  });
});

describe('cidr', () => {
  it('parses and prints v4 and v6', () => {
    expect(parsePrefix('10.1.2.3/8')).toEqual({ family: 4, addr: 0x0a010203n, bits: 8 });
    expect(parsePrefix('10.1.2.3/33')).toBeUndefined();
    expect(parsePrefix('nonsense')).toBeUndefined();
    const v6 = parseIp('2001:db8::1')!;
    expect(formatIp(6, v6.value)).toBe('2001:db8::1');
    expect(formatIp(6, parseIp('2001:db8:0:0:1:0:0:1')!.value)).toBe('2001:db8::1:0:0:1');
  });

  it('takes the IPv6 forms net.isIPv6 takes, but not the embedded IPv4 and zone forms', () => {
    const v6 = (t: string) => parseIp(t)?.value;
    expect(v6('::')).toBe(0n);
    expect(v6('::1')).toBe(1n);
    expect(v6('1::')).toBe(1n << 112n);
    expect(v6('1:2:3:4:5:6:7::')).toBe(0x0001_0002_0003_0004_0005_0006_0007_0000n);
    expect(v6('FE80::aBc')).toBe((0xfe80n << 112n) | 0xabcn);
    for (const t of ['1:2:3:4:5:6:7:8', '::ffff:0:1', 'fe80::', '2001:db8::1']) expect(parseIp(t)?.family, t).toBe(6);
    for (const t of [':1::', '1:::2', '1::2::3', '1:2:3:4:5:6:7:8::', '1:2:3:4:5:6:7', '12345::', 'g::', '::ffff:1.2.3.4', 'fe80::1%eth0', '', ':']) {
      expect(parseIp(t), t).toBeUndefined();
      // Node agrees, except on the forms left out on purpose
      if (!t.includes('.') && !t.includes('%')) expect(net.isIPv6(t), t).toBe(false);
    }
  });
});
