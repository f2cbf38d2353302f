/**
 * Generic netlink's controller request and reply (src/sys/genl.ts), as <linux/genetlink.h> lays
 * them out; the kernel's own answers are checked in test/integration/sys/misc.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { familyIdOf, familyRequest } from '../../../src/sys/genl';
import { AttrStream } from '../../../src/sys/netlink-lib';

/** A netlink message of `type` with `payload`, padded to 4 bytes. */
function message(type: number, payload: Buffer): Buffer {
  const len = 16 + payload.length;
  const b = Buffer.alloc((len + 3) & ~3);
  b.writeUInt32LE(len, 0);
  b.writeUInt16LE(type, 4);
  payload.copy(b, 16);
  return b;
}

/** Netlink attributes, as the agent's requests encode them. */
function attrs(...list: [type: number, value: Buffer][]): Buffer {
  const out = new AttrStream();
  for (const [type, value] of list) out.push(type, value);
  return Buffer.concat(out.bufs);
}

const u16 = (n: number) => Buffer.from([n & 0xff, n >> 8]);
const genlHeader = Buffer.from([1, 2, 0, 0]); // CTRL_CMD_NEWFAMILY, version 2

describe('generic netlink controller messages', () => {
  it('asks CTRL_CMD_GETFAMILY by name, NUL-terminated, with an ACK requested', () => {
    const b = familyRequest('wireguard');
    expect(b.length).toBe(16 + 4 + 16); // attribute: 4 + "wireguard\0" (10), padded to 16
    expect(b.readUInt32LE(0)).toBe(b.length);
    expect(b.readUInt16LE(4)).toBe(0x10); // GENL_ID_CTRL
    expect(b.readUInt16LE(6)).toBe(1 | 4); // NLM_F_REQUEST | NLM_F_ACK
    expect([b[16], b[17]]).toEqual([3, 1]); // CTRL_CMD_GETFAMILY, version 1
    expect(b.readUInt16LE(20)).toBe(14);
    expect(b.readUInt16LE(22)).toBe(2); // CTRL_ATTR_FAMILY_NAME
    expect(b.subarray(24, 34).toString('latin1')).toBe('wireguard\0');
  });

  it('finds CTRL_ATTR_FAMILY_ID among the attributes of the reply, whatever comes first', () => {
    const payload = Buffer.concat([genlHeader, attrs([2, Buffer.from('wireguard\0')], [1, u16(0x1c)], [3, Buffer.alloc(4)])]);
    const ack = message(2, Buffer.alloc(4)); // NLMSG_ERROR with error 0
    expect(familyIdOf(Buffer.concat([message(0x10, payload), ack]))).toBe(0x1c);
  });

  it('has no id for an error reply, an empty or a truncated answer', () => {
    const enoent = Buffer.alloc(4);
    enoent.writeInt32LE(-2, 0);
    expect(familyIdOf(message(2, enoent))).toBeUndefined();
    expect(familyIdOf(Buffer.alloc(0))).toBeUndefined();
    const whole = message(0x10, Buffer.concat([genlHeader, attrs([1, u16(0x1c)])]));
    expect(familyIdOf(whole.subarray(0, whole.length - 4))).toBeUndefined();
  });
});
