// Root + wireguard-go: the WIREGUARD tunnel dataplane as the agent drives it, with the
// underlay on 127.0.0.1. The requesting end is prepared at its target before the answer and
// finished with the peer; the serving end is prepared with the peer and placed afterwards.
// Spare devices appear once WireGuard is in use and are removed by close().
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/log';
import { wireguardDataplane } from '../../../src/mechanisms/wireguard/dataplane';
import { UdpPortAllocator, liveWireguardDevices } from '../../../src/mechanisms/wireguard';
import type { Netns } from '../../../src/sys';
import { tempNetns } from '../../helpers/netns';

const root = process.getuid?.() === 0;
const hasWgGo = spawnSync('sh', ['-c', 'command -v wireguard-go && command -v ping']).status === 0;

function ping(ns: string, ip: string): boolean {
  return spawnSync('ip', ['netns', 'exec', ns, 'ping', '-c', '2', '-i', '0.2', '-W', '1', ip], { stdio: 'ignore' }).status === 0;
}

describe.skipIf(!root || !hasWgGo)('WireGuard tunnel dataplane', () => {
  const tmp = tempNetns('wgdp');
  let nsc: Netns & { name: string };
  let nse: Netns & { name: string };
  const dp = wireguardDataplane({
    underlay: { ip: '127.0.0.1', family: 4, mtu: 1500 },
    ports: new UdpPortAllocator({ host: '127.0.0.1', min: 54100, max: 54110 }),
    log: silentLogger,
    spares: 2,
  });

  beforeAll(async () => {
    nsc = await tmp.create('c');
    nse = await tmp.create('e');
  });
  afterAll(async () => {
    await dp.close?.();
    await tmp.cleanup();
  });

  it('connects two namespaces with a head start on both ends, keeps spares, removes everything', async () => {
    const client = await dp.allocate('src', undefined);
    const server = await dp.allocate('dst', undefined);
    const clientPeer = dp.peerOf(dp.advertise(client, 'src'), 'src');
    const serverPeer = dp.peerOf(dp.advertise(server, 'dst'), 'dst');
    const cTarget = { netns: nsc.path, ifname: 'nsm-1' };
    const eTarget = { netns: nse.path, ifname: 'nsm-e' };

    const cPrep = await dp.prepare!({ local: client, target: cTarget, mtu: 1440 });
    const sPrep = await dp.prepare!({ local: server, peer: clientPeer, mtu: 1440 });
    const e = await dp.create({ local: server, peer: clientPeer, target: eTarget, mtu: 1440, side: { addrs: ['172.16.5.1/32'], peers: ['172.16.5.2/32'], routes: [] }, prepared: sPrep });
    const c = await dp.create({ local: client, peer: serverPeer, target: cTarget, mtu: 1400, side: { addrs: ['172.16.5.2/32'], peers: ['172.16.5.1/32'], routes: [] }, prepared: cPrep });

    expect(ping(nsc.name, '172.16.5.1')).toBe(true);
    expect(ping(nse.name, '172.16.5.2')).toBe(true);
    // the answer lowered the MTU after the client end was placed
    const mtu = JSON.parse(spawnSync('ip', ['-n', nsc.name, '-j', 'link', 'show', 'nsm-1'], { encoding: 'utf8' }).stdout)[0].mtu;
    expect(mtu).toBe(1400);
    expect(dp.describe(c)).toMatchObject({ type: 'WIREGUARD', ifname: 'nsm-1', impl: 'wireguard-go' });

    // two in use, and spares refilled in the background
    const deadline = Date.now() + 5000;
    while (liveWireguardDevices().length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(liveWireguardDevices()).toHaveLength(4);

    await dp.remove(c);
    await dp.remove(e);
    dp.release(client);
    dp.release(server);
    expect(liveWireguardDevices()).toHaveLength(2);
    await dp.close!();
    expect(liveWireguardDevices()).toHaveLength(0);
    expect(spawnSync('ip', ['-n', nsc.name, 'link', 'show', 'nsm-1']).status).not.toBe(0);
  }, 30_000);

  it('refuses a malformed peer key naming the parameter', () => {
    expect(() => dp.peerOf({ dst_ip: '127.0.0.1', dst_port: '1', dst_public_key: 'abc' }, 'dst')).toThrow(/dst_public_key: malformed WireGuard public key/);
  });
});
