/**
 * Kernel WireGuard is configured with WG_CMD_SET_DEVICE over generic netlink: the command number
 * and the attributes the kernel gets (checked against <linux/wireguard.h>, without a kernel).
 */
import { describe, it, expect } from 'vitest';
import { EventEmitter } from 'node:events';
import { WireGuardSocket, wg } from 'netlink';
import { setKernelDevice } from '../../../src/mechanisms/wireguard/device';

/** A WireGuardSocket over a fake generic-netlink socket that records what is sent. */
function recordingSocket(): { sock: WireGuardSocket; sent: { family: number; cmd: number; version: number; data: Buffer }[] } {
  const sent: { family: number; cmd: number; version: number; data: Buffer }[] = [];
  const fake = Object.assign(new EventEmitter(), {
    request: async (family: number, cmd: number, version: number, data: Buffer[]) => {
      sent.push({ family, cmd, version, data: Buffer.concat(data) });
      return [[], {}];
    },
  });
  const sock = new WireGuardSocket(fake as never, { familyId: 0x1c, version: 1 } as never);
  return { sock, sent };
}

describe('kernel WireGuard over generic netlink', () => {
  it('SET_DEVICE is command 1 (enum wg_cmd: GET_DEVICE 0, SET_DEVICE 1), with the device attributes', async () => {
    const { sock, sent } = recordingSocket();
    const key = Buffer.alloc(32, 7);
    await setKernelDevice(sock, 'nsm-1', {
      privateKey: key,
      listenPort: 51820,
      flags: { replacePeers: true },
      peers: [{ publicKey: Buffer.alloc(32, 9), persistentKeepaliveInterval: 10, allowedIps: [{ family: 2, ipaddr: Buffer.alloc(4), cidrMask: 0 }] }],
    });
    expect(sent).toHaveLength(1);
    expect(sent[0]!.family).toBe(0x1c);
    expect(sent[0]!.cmd).toBe(1);
    expect(sent[0]!.version).toBe(1);
    const dev = wg.parseDevice(sent[0]!.data);
    expect(dev.ifname).toBe('nsm-1');
    expect(dev.listenPort).toBe(51820);
    expect(Buffer.from(dev.privateKey!)).toEqual(key);
    expect(dev.flags?.replacePeers).toBe(true);
    expect(dev.peers).toHaveLength(1);
    expect(dev.peers![0]!.persistentKeepaliveInterval).toBe(10);
    expect(dev.peers![0]!.allowedIps![0]).toMatchObject({ family: 2, cidrMask: 0 });
  });
});
