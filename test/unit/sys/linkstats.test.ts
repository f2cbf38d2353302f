// SPDX-License-Identifier: Apache-2.0
// parseLinkStats on hand-made RTM_NEWLINK payloads: name and IFLA_STATS64, short or missing stats.
import { describe, expect, it } from 'vitest';
import { parseLinkStats } from '../../../src/sys';

function attr(type: number, data: Buffer): Buffer {
  const hdr = Buffer.alloc(4);
  hdr.writeUInt16LE(4 + data.length, 0);
  hdr.writeUInt16LE(type, 2);
  return Buffer.concat([hdr, data, Buffer.alloc((4 - (data.length % 4)) % 4)]);
}
const ifinfo = (index: number) => {
  const b = Buffer.alloc(16);
  b.writeInt32LE(index, 4);
  return b;
};
function stats64(values: number[]): Buffer {
  const b = Buffer.alloc(8 * 24); // the kernel's struct is longer than the fields read
  values.forEach((v, i) => b.writeBigUInt64LE(BigInt(v), i * 8));
  return b;
}

describe('parseLinkStats', () => {
  it('reads packets, bytes and drops of IFLA_STATS64 and the name', () => {
    // rx_packets, tx_packets, rx_bytes, tx_bytes, rx_errors, tx_errors, rx_dropped, tx_dropped
    const payload = Buffer.concat([ifinfo(4), attr(3, Buffer.from('nsc0\0')), attr(7, Buffer.alloc(92)), attr(23, stats64([10, 20, 1000, 2_000_000_000_000, 1, 2, 3, 4]))]);
    expect(parseLinkStats(payload)).toEqual({ index: 4, name: 'nsc0', rxPackets: 10, txPackets: 20, rxBytes: 1000, txBytes: 2_000_000_000_000, rxDropped: 3, txDropped: 4 });
  });

  it('gives zeros without stats, and ignores a truncated stats block', () => {
    const zero = { index: 2, name: 'x', rxPackets: 0, txPackets: 0, rxBytes: 0, txBytes: 0, rxDropped: 0, txDropped: 0 };
    expect(parseLinkStats(Buffer.concat([ifinfo(2), attr(3, Buffer.from('x\0'))]))).toEqual(zero);
    expect(parseLinkStats(Buffer.concat([ifinfo(2), attr(3, Buffer.from('x\0')), attr(23, Buffer.alloc(16, 1))]))).toEqual(zero);
  });
});
