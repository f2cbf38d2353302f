// SPDX-License-Identifier: Apache-2.0
// Pure (no root): address text <-> wire conversions used in netlink requests.
import { describe, expect, it } from 'vitest';
import { formatIp, formatMac, parseCidr, parseIp, parseMac } from '../../../src/sys';

describe('ip parsing and formatting', () => {
  it('round-trips IPv4 and canonical IPv6', () => {
    for (const text of ['10.0.0.1', '0.0.0.0', '255.255.255.255', '::', '::1', 'fd00::1', '2001:db8::1:0:0:1', '1:2:3:4:5:6:7:8', '::ffff:10.1.2.3', 'fe80::ff:fe00:a']) {
      expect(formatIp(parseIp(text).bytes)).toBe(text);
    }
    expect(parseIp('::ffff:10.1.2.3').bytes.toString('hex')).toBe('00000000000000000000ffff0a010203');
    expect(formatIp(parseIp('2001:DB8:0:0:1:0:0:1').bytes)).toBe('2001:db8::1:0:0:1'); // first longest run
    expect(formatIp(parseIp('2001:db8:0:1:1:1:1:1').bytes)).toBe('2001:db8:0:1:1:1:1:1'); // no '::' for one group
  });

  it('parses CIDRs and rejects junk with EINVAL', () => {
    expect(parseCidr('10.1.0.0/16')).toMatchObject({ family: 4, prefixLen: 16 });
    expect(parseCidr('fd00::1')).toMatchObject({ family: 6, prefixLen: 128 });
    for (const bad of ['10.0.0.1/33', '10.0.0.1/', '10.0.0.1/a', 'fd00::/129', 'fe80::1%eth0', 'nope', '1.2.3']) {
      expect(() => parseCidr(bad)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    }
  });

  it('parses and formats MACs', () => {
    expect(formatMac(parseMac('02:AA:bb:0c:0D:ff'))).toBe('02:aa:bb:0c:0d:ff');
    expect(formatMac(parseMac('02-00-00-00-00-01'))).toBe('02:00:00:00:00:01');
    expect(() => parseMac('02:00:00:00:00')).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });
});
