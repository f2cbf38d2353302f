/**
 * Kernel WireGuard is configured with WG_CMD_SET_DEVICE over generic netlink: the command number
 * and the attributes the kernel gets, checked against <linux/wireguard.h> and the kernel's strict
 * validation of the wireguard family (nested attributes flagged NLA_F_NESTED), without a kernel.
 */
import { describe, it, expect, vi } from 'vitest';

/** Generic-netlink sockets that answer GET_FAMILY with family 0x1c and record every request. */
const sent = vi.hoisted(() => [] as { family: number; cmd: number; version: number; data: Buffer }[]);
vi.mock('../../../src/sys/netlink-lib', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../../src/sys/netlink-lib')>()),
  createGenericNetlink: () => ({
    ctrlRequest: async () => [{ familyId: 0x1c, familyName: 'wireguard' }],
    request: async (family: number, cmd: number, version: number, data: Buffer[]) => {
      sent.push({ family, cmd, version, data: Buffer.concat(data) });
      return [[], {}];
    },
    socket: { close: () => {} },
  }),
}));
vi.mock('../../../src/sys/genl', () => ({ genlFamilyId: async () => 0x1c }));

import { NLA_F_NESTED, setDeviceAttrs, setWireguardDevice } from '../../../src/sys/wireguard';

interface Attr {
  type: number;
  nested: boolean;
  data: Buffer;
}

/** The attributes in `b` (type without flags, NLA_F_NESTED, payload); throws on a malformed stream. */
function attrs(b: Buffer): Attr[] {
  const out: Attr[] = [];
  let off = 0;
  while (off < b.length) {
    const len = b.readUInt16LE(off);
    const type = b.readUInt16LE(off + 2);
    if (len < 4 || off + len > b.length) throw new Error(`bad attribute length ${len} at ${off}`);
    out.push({ type: type & 0x3fff, nested: (type & NLA_F_NESTED) !== 0, data: b.subarray(off + 4, off + len) });
    off += (len + 3) & ~3;
  }
  return out;
}
const get = (list: Attr[], type: number): Attr => {
  const a = list.find((x) => x.type === type);
  if (!a) throw new Error(`attribute ${type} missing`);
  return a;
};

const privateKey = Buffer.alloc(32, 7);
const publicKey = Buffer.alloc(32, 9);
const cfg = {
  privateKey,
  listenPort: 51820,
  peers: [{ publicKey, endpoint: { ip: '10.77.0.1', port: 20010 }, persistentKeepalive: 10, allowedIps: ['0.0.0.0/0', '::/0'] }],
};
const endpoint = Buffer.from('02004e2a0a4d00010000000000000000', 'hex'); // sockaddr_in AF_INET 10.77.0.1:20010

describe('kernel WireGuard over generic netlink', () => {
  it('SET_DEVICE goes out as command 1 of the wireguard family (enum wg_cmd: GET_DEVICE 0, SET_DEVICE 1), version 1', async () => {
    sent.length = 0;
    await setWireguardDevice(undefined, 'nsm-1', cfg);
    expect(sent.map(({ family, cmd, version }) => ({ family, cmd, version }))).toEqual([{ family: 0x1c, cmd: 1, version: 1 }]);
    expect(sent[0]!.data).toEqual(setDeviceAttrs('nsm-1', cfg));
  });

  it('device attributes: NUL-terminated name, key, REPLACE_PEERS, u16 port; every nested attribute flagged NLA_F_NESTED', () => {
    const top = attrs(setDeviceAttrs('nsm-1', cfg));
    expect(get(top, 2).data.toString()).toBe('nsm-1\0'); // WGDEVICE_A_IFNAME (NLA_NUL_STRING)
    expect(get(top, 3).data).toEqual(privateKey); // WGDEVICE_A_PRIVATE_KEY
    expect(get(top, 5).data.readUInt32LE()).toBe(1); // WGDEVICE_A_FLAGS: REPLACE_PEERS
    expect(get(top, 6).data).toEqual(Buffer.from([0x6c, 0xca])); // WGDEVICE_A_LISTEN_PORT, exactly 2 bytes
    const peersAttr = get(top, 8); // WGDEVICE_A_PEERS
    expect(peersAttr.nested).toBe(true);
    const peers = attrs(peersAttr.data);
    expect(peers.map((p) => [p.type, p.nested])).toEqual([[1, true]]);
    const peer = attrs(peers[0]!.data);
    expect(get(peer, 1).data).toEqual(publicKey); // WGPEER_A_PUBLIC_KEY
    expect(get(peer, 3).data.readUInt32LE()).toBe(2); // WGPEER_A_FLAGS: REPLACE_ALLOWEDIPS
    expect(get(peer, 4).data).toEqual(endpoint); // WGPEER_A_ENDPOINT (sockaddr_in)
    expect(get(peer, 5).data).toEqual(Buffer.from([10, 0])); // keepalive, u16
    const allowed = get(peer, 9); // WGPEER_A_ALLOWEDIPS
    expect(allowed.nested).toBe(true);
    const ips = attrs(allowed.data);
    expect(ips.map((a) => [a.type, a.nested])).toEqual([
      [1, true],
      [2, true],
    ]);
    const v6 = attrs(ips[1]!.data);
    expect(get(v6, 1).data).toEqual(Buffer.from([10, 0])); // WGALLOWEDIP_A_FAMILY AF_INET6, u16
    expect(get(v6, 2).data).toEqual(Buffer.alloc(16));
    expect(get(v6, 3).data).toEqual(Buffer.from([0])); // WGALLOWEDIP_A_CIDR_MASK, u8
  });

  it('a device without a peer still sends an (empty) peer list, so REPLACE_PEERS removes the old peer', () => {
    const top = attrs(setDeviceAttrs('nsmwg0123456789', { ...cfg, peers: [] }));
    expect(get(top, 8)).toMatchObject({ nested: true, data: Buffer.alloc(0) });
  });
});
