// The byte layout of struct sockaddr_in / sockaddr_in6 as the kernel reads a WireGuard peer's
// endpoint: family in host byte order (little endian on the hosts we run on), port big endian.
import { endianness } from 'node:os';
import { describe, expect, it } from 'vitest';
import { SOCKADDR_IN6_LEN, SOCKADDR_IN_LEN, SysError, encodeSockaddr } from '../../../src/sys';

const le = endianness() === 'LE';

describe('encodeSockaddr', () => {
  it.runIf(le)('lays out sockaddr_in: family 2 (LE), port BE, address, 8 zero bytes', () => {
    const b = encodeSockaddr('192.0.2.7', 51820);
    expect(b).toHaveLength(SOCKADDR_IN_LEN);
    expect(b.toString('hex')).toBe('0200' + 'ca6c' + 'c0000207' + '0000000000000000');
  });

  it.runIf(le)('lays out sockaddr_in6: family 10 (LE), port BE, flowinfo 0, address, scope id (LE)', () => {
    const b = encodeSockaddr('2001:db8::1', 51821);
    expect(b).toHaveLength(SOCKADDR_IN6_LEN);
    expect(b.toString('hex')).toBe('0a00' + 'ca6d' + '00000000' + '20010db8000000000000000000000001' + '00000000');
    const scoped = encodeSockaddr('fe80::2', 1, 7);
    expect(scoped.toString('hex')).toBe('0a00' + '0001' + '00000000' + 'fe800000000000000000000000000002' + '07000000');
  });

  it('writes the family in host byte order', () => {
    expect(encodeSockaddr('10.0.0.1', 1).readUInt16LE(0)).toBe(le ? 2 : 0x200);
    expect(encodeSockaddr('::1', 1).readUInt16LE(0)).toBe(le ? 10 : 0xa00);
  });

  it('refuses bad addresses, zones and ports with EINVAL', () => {
    for (const [ip, port] of [
      ['10.0.0', 1],
      ['fe80::1%eth0', 1],
      ['10.0.0.1', 65536],
      ['10.0.0.1', -1],
      ['10.0.0.1', 1.5],
    ] as const) {
      expect(() => encodeSockaddr(ip, port)).toThrow(SysError);
      try {
        encodeSockaddr(ip, port);
      } catch (err) {
        expect((err as SysError).code).toBe('EINVAL');
      }
    }
  });
});
