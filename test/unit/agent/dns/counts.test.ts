import { describe, expect, it } from 'vitest';
import { DnsAnswerCounts } from '../../../../src/agent/dns/counts';

describe('DnsAnswerCounts', () => {
  it('counts answers by server and the response code in their header, and dropped queries', () => {
    const c = new DnsAnswerCounts();
    const header = (rcode: number) => Buffer.from([0x12, 0x34, 0x81, 0x80 | rcode]);
    c.count('resolver', header(0));
    c.count('resolver', header(0));
    c.count('resolver', header(3));
    c.count('vl3', header(5));
    c.count('vl3', undefined);
    expect(c.entries()).toEqual([
      { server: 'resolver', rcode: 'NOERROR', n: 2 },
      { server: 'resolver', rcode: 'NXDOMAIN', n: 1 },
      { server: 'vl3', rcode: 'REFUSED', n: 1 },
      { server: 'vl3', rcode: 'DROPPED', n: 1 },
    ]);
  });
});
