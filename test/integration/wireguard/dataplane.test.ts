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

  it('keeps spares waiting, down, where the serving end had to move one; the next serving end only renames one', async () => {
    // its own dataplane: the first test closed the shared one
    const dp2 = wireguardDataplane({
      underlay: { ip: '127.0.0.1', family: 4, mtu: 1500 },
      ports: new UdpPortAllocator({ host: '127.0.0.1', min: 54111, max: 54120 }),
      log: silentLogger,
      spares: 2,
    });
    const waiting = (ns: string): { ifname: string; ifindex: number; operstate: string }[] =>
      JSON.parse(spawnSync('ip', ['-n', ns, '-j', 'link', 'show'], { encoding: 'utf8' }).stdout).filter((l: { ifname: string }) =>
        l.ifname.startsWith('nsmwg'),
      );
    const connect = async (n: number) => {
      const client = await dp2.allocate('src', undefined);
      const server = await dp2.allocate('dst', undefined);
      const clientPeer = dp2.peerOf(dp2.advertise(client, 'src'), 'src');
      const serverPeer = dp2.peerOf(dp2.advertise(server, 'dst'), 'dst');
      const cTarget = { netns: nsc.path, ifname: `nsm-c${n}` };
      const cPrep = await dp2.prepare!({ local: client, target: cTarget, mtu: 1440 });
      const sPrep = await dp2.prepare!({ local: server, peer: clientPeer, mtu: 1440 });
      const side = (a: string, b: string) => ({ addrs: [`172.16.6.${a}/32`], peers: [`172.16.6.${b}/32`], routes: [] });
      const e = await dp2.create({ local: server, peer: clientPeer, target: { netns: nse.path, ifname: `nsm-e${n}` }, mtu: 1440, side: side(`${n * 2 + 1}`, `${n * 2 + 2}`), prepared: sPrep });
      const c = await dp2.create({ local: client, peer: serverPeer, target: cTarget, mtu: 1440, side: side(`${n * 2 + 2}`, `${n * 2 + 1}`), prepared: cPrep });
      return { c, e, release: () => (dp2.release(client), dp2.release(server)) };
    };

    const first = await connect(1); // the spares waited in the host namespace: this serving end moved
    const deadline = Date.now() + 5000;
    while (waiting(nse.name).length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const spares = waiting(nse.name);
    expect(spares).toHaveLength(2);
    expect(spares.every((l) => l.operstate === 'DOWN')).toBe(true);

    const second = await connect(2);
    const ifindex = JSON.parse(spawnSync('ip', ['-n', nse.name, '-j', 'link', 'show', 'nsm-e2'], { encoding: 'utf8' }).stdout)[0].ifindex;
    expect(spares.map((l) => l.ifindex)).toContain(ifindex); // the same link, renamed where it waited
    expect(ping(nsc.name, '172.16.6.5')).toBe(true);
    expect(ping(nse.name, '172.16.6.6')).toBe(true);
    expect(ping(nsc.name, '172.16.6.3')).toBe(true);

    for (const x of [first, second]) {
      await dp2.remove(x.c);
      await dp2.remove(x.e);
      x.release();
    }
    await dp2.close!();
    expect(liveWireguardDevices()).toHaveLength(0);
    expect(waiting(nse.name)).toHaveLength(0);
  }, 30_000);

  it('refuses a malformed peer key naming the parameter', () => {
    expect(() => dp.peerOf({ dst_ip: '127.0.0.1', dst_port: '1', dst_public_key: 'abc' }, 'dst')).toThrow(/dst_public_key: malformed WireGuard public key/);
  });
});
