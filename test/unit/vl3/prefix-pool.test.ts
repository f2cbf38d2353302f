import { describe, it, expect } from 'vitest';
import { AgentError } from '../../../src/core/errors';
import { firstFreeSubnet, formatPrefix, parseNetwork, parsePrefix, within } from '../../../src/networkservice/ipam/cidr';
import { PrefixPool, poolSettingsProblem } from '../../../src/vl3/ipam/pool';

function errorOf(fn: () => unknown): AgentError {
  try {
    fn();
  } catch (err) {
    return err as AgentError;
  }
  throw new Error('no error thrown');
}

describe('cidr helpers for prefix pools', () => {
  it('parseNetwork masks host bits and needs a length', () => {
    expect(formatPrefix(parseNetwork('172.16.1.0/16')!)).toBe('172.16.0.0/16');
    expect(formatPrefix(parseNetwork('2001:db8::1:5/112')!)).toBe('2001:db8::1:0/112');
    expect(parseNetwork('172.16.1.0')).toBeUndefined();
    expect(parseNetwork('172.16.1.0/33')).toBeUndefined();
  });

  it('within and firstFreeSubnet work on ranges, aligned', () => {
    const net = parseNetwork('10.0.0.0/16')!;
    expect(within(net, parseNetwork('10.0.5.0/24')!)).toBe(true);
    expect(within(net, parseNetwork('10.1.0.0/24')!)).toBe(false);
    expect(within(parseNetwork('10.0.5.0/24')!, net)).toBe(false);
    // a /25 taken at the start pushes the first free /24 to the next boundary
    const first = firstFreeSubnet(net, 24, [parsePrefix('10.0.0.0/25')!]);
    expect(formatPrefix(first!)).toBe('10.0.1.0/24');
    // a single host taken in the middle of a block skips that whole block
    expect(formatPrefix(firstFreeSubnet(net, 24, [parsePrefix('10.0.0.7/32')!, parsePrefix('10.0.1.0/24')!])!)).toBe('10.0.2.0/24');
    expect(firstFreeSubnet(net, 16, [parsePrefix('10.0.200.1/32')!])).toBeUndefined();
    // IPv6: 2^48 candidates, found at once
    const v6 = parseNetwork('2001:db8::/64')!;
    const taken = [parseNetwork('2001:db8::/112')!, parseNetwork('2001:db8::2:0/112')!];
    expect(formatPrefix(firstFreeSubnet(v6, 112, taken)!)).toBe('2001:db8::1:0/112');
  });
});

describe('vl3-ipam prefix pool', () => {
  it('hands out /clientPrefixLength prefixes in order, unique, and takes them back', () => {
    const pool = new PrefixPool('172.16.0.0/16', 24);
    expect(pool.allocate('')).toBe('172.16.0.0/24');
    expect(pool.allocate('')).toBe('172.16.1.0/24');
    expect(pool.inUse()).toEqual(['172.16.0.0/24', '172.16.1.0/24']);
    expect(pool.free('172.16.0.0/24')).toBe(true);
    expect(pool.free('172.16.0.0/24')).toBe(false);
    expect(pool.allocate('')).toBe('172.16.0.0/24');
  });

  it('grants the requested prefix when free (a reconnect gets its previous prefix back), else a new one', () => {
    const pool = new PrefixPool('172.16.0.0/16', 24);
    expect(pool.allocate('172.16.7.0/24')).toBe('172.16.7.0/24');
    // in use by another stream: a new one
    expect(pool.allocate('172.16.7.0/24')).toBe('172.16.0.0/24');
    // outside the network, or wider than a client prefix: a new one
    expect(pool.allocate('10.0.0.0/24')).toBe('172.16.1.0/24');
    expect(pool.allocate('172.16.128.0/17')).toBe('172.16.2.0/24');
    // a longer prefix inside the network is granted as asked
    expect(pool.allocate('172.16.9.16/28')).toBe('172.16.9.16/28');
    expect(pool.allocate('172.16.9.0/24')).toBe('172.16.3.0/24');
  });

  it('masks host bits of requested, excluded and freed prefixes', () => {
    const pool = new PrefixPool('172.16.1.0/16', 24);
    expect(pool.cidr).toBe('172.16.0.0/16');
    expect(pool.allocate('172.16.5.9/24')).toBe('172.16.5.0/24');
    expect(pool.allocate('', ['172.16.0.200/23'])).toBe('172.16.2.0/24');
    expect(pool.free('172.16.5.77/24')).toBe(true);
  });

  it('allocates outside the request\'s exclude_prefixes, which only that request avoids', () => {
    const pool = new PrefixPool('172.16.0.0/16', 24);
    expect(pool.allocate('', ['172.16.0.0/24', '172.16.1.0/25', '10.0.0.0/8', '2001:db8::/64'])).toBe('172.16.2.0/24');
    // a requested prefix that is excluded is not granted
    expect(pool.allocate('172.16.0.0/24', ['172.16.0.0/23'])).toBe('172.16.3.0/24');
    // the next request has no excludes: 172.16.0.0/24 is free
    expect(pool.allocate('')).toBe('172.16.0.0/24');
    // a bare address excludes that host
    expect(pool.allocate('', ['172.16.1.1'])).toBe('172.16.4.0/24');
  });

  it('is exhausted with POOL_EXHAUSTED and a message naming the pool', () => {
    const pool = new PrefixPool('172.16.0.0/23', 24);
    pool.allocate('');
    pool.allocate('');
    const err = errorOf(() => pool.allocate(''));
    expect(err.code).toBe('POOL_EXHAUSTED');
    expect(err.grpcStatus).toBe(8); // RESOURCE_EXHAUSTED
    expect(err.message).toBe('vl3-ipam prefix pool 172.16.0.0/23 is exhausted: no free /24 (2 in use)');
    pool.free('172.16.1.0/24');
    expect(pool.allocate('')).toBe('172.16.1.0/24');
    const excl = errorOf(() => new PrefixPool('10.0.0.0/24', 25).allocate('', ['10.0.0.0/24']));
    expect(excl.message).toMatch(/no free \/25 outside the 1 excluded prefixes/);
  });

  it('refuses text that is not a prefix with INVALID_ARGUMENT naming the field', () => {
    const pool = new PrefixPool('172.16.0.0/16', 24);
    expect(errorOf(() => pool.allocate('nope'))).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/PrefixRequest\.prefix: "nope"/) });
    expect(errorOf(() => pool.allocate('', ['172.16.0.0/24', 'x/1']))).toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/PrefixRequest\.exclude_prefixes\[1\]: "x\/1"/),
    });
    expect(pool.inUse()).toEqual([]);
  });

  it('serves IPv6: 2001:db8::/64 with client length 112', () => {
    const pool = new PrefixPool('2001:db8::/64', 112);
    expect(pool.allocate('')).toBe('2001:db8::/112');
    expect(pool.allocate('')).toBe('2001:db8::1:0/112');
    expect(pool.allocate('2001:db8::abcd:0/112')).toBe('2001:db8::abcd:0/112');
    expect(pool.allocate('2001:db8::abcd:1234/112')).toBe('2001:db8::2:0/112');
    expect(pool.allocate('', ['2001:db8::3:0/112'])).toBe('2001:db8::4:0/112');
  });

  it('checks its settings: the prefix, and a client length longer than it and within the family', () => {
    expect(poolSettingsProblem('172.16.0.0/16', 24)).toBeUndefined();
    expect(poolSettingsProblem('2001:db8::/64', 128)).toBeUndefined();
    expect(poolSettingsProblem('172.16.0.0', 24)).toMatchObject({ key: 'prefix' });
    expect(poolSettingsProblem('172.16.0.0/16', 16)).toMatchObject({ key: 'clientPrefixLength', reason: '16 does not fit 172.16.0.0/16: it must be longer than /16 and at most /32' });
    expect(poolSettingsProblem('172.16.0.0/16', 33)).toMatchObject({ key: 'clientPrefixLength' });
    expect(poolSettingsProblem('2001:db8::/64', 129)).toMatchObject({ key: 'clientPrefixLength' });
    expect(errorOf(() => new PrefixPool('172.16.0.0/16', 8))).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^vl3-ipam clientPrefixLength: 8 does not fit/) });
  });
});
