// SPDX-License-Identifier: Apache-2.0
// parseLinkInfo on hand-made RTM_NEWLINK payloads: the fields LinkInfo has, malformed input.
import { describe, expect, it } from 'vitest';
import { SysError } from '../../../src/sys';
import { parseLinkInfo } from '../../../src/sys/link';

/** One netlink attribute (host byte order), padded to 4 bytes. */
function attr(type: number, data: Buffer): Buffer {
  const hdr = Buffer.alloc(4);
  hdr.writeUInt16LE(4 + data.length, 0);
  hdr.writeUInt16LE(type, 2);
  return Buffer.concat([hdr, data, Buffer.alloc((4 - (data.length % 4)) % 4)]);
}
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};
const str = (s: string) => Buffer.from(`${s}\0`);
function ifinfo(index: number, flags: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(flags, 8);
  return b;
}

describe('parseLinkInfo', () => {
  it('reads index, flags, name, MTU, MAC, alias and kind, and skips the other attributes', () => {
    const payload = Buffer.concat([
      ifinfo(7, 0x1 | 0x10000),
      attr(3, str('nsm-a')),
      attr(13, Buffer.alloc(9)), // IFLA_QDISC-like noise
      attr(4, u32(1420)),
      attr(1, Buffer.from([2, 0, 0, 0, 0, 0x2a])),
      attr(20, str('nsm connection 1')),
      attr(18 | 0x8000, Buffer.concat([attr(1, str('veth')), attr(2 | 0x8000, attr(1, Buffer.alloc(20)))])),
    ]);
    expect(parseLinkInfo(payload)).toEqual({ index: 7, name: 'nsm-a', mtu: 1420, up: true, carrier: true, mac: '02:00:00:00:00:2a', alias: 'nsm connection 1', kind: 'veth' });
    expect(parseLinkInfo(Buffer.concat([ifinfo(1, 0), attr(3, str('lo')), attr(20, str(''))]))).toEqual({ index: 1, name: 'lo', mtu: 0, up: false, carrier: false });
  });

  it('stops at a malformed attribute and refuses a payload shorter than its header', () => {
    const cut = Buffer.concat([ifinfo(3, 1), attr(3, str('x')), Buffer.from([200, 0, 4, 0, 1, 2])]);
    expect(parseLinkInfo(cut)).toMatchObject({ index: 3, name: 'x', mtu: 0 });
    expect(() => parseLinkInfo(Buffer.alloc(10))).toThrow(SysError);
  });
});
