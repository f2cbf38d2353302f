// Root + wireguard-go: the WIREGUARD tunnel dataplane as the agent drives it, with the
// underlay on 127.0.0.1. The requesting end is prepared at its target before the answer and
// finished with the peer; the serving end is prepared with the peer and placed afterwards.
// Spare devices appear once WireGuard is in use and are removed by close().
import { spawnSync } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../src/core/log';
import { wireguardDataplane } from '../../../src/mechanisms/wireguard/dataplane';
import { UdpPortAllocator, liveWireguardDevices } from '../../../src/mechanisms/wireguard';
import type { Netns } from '../../../src/sys';
import { tempNetns } from '../../helpers/netns';

const root = process.getuid?.() === 0;
const hasWgGo = spawnSync('sh', ['-c', 'command -v wireguard-go && command -v ping']).status === 0;

/** Two dataplanes as two agents (the requesting one first), ten ports each from `minPort`, `spares` spares each. */
function twoDataplanes(minPort: number, spares: number) {
  const make = (min: number) =>
    wireguardDataplane({
      underlay: { ip: '127.0.0.1', family: 4, mtu: 1500 },
      ports: new UdpPortAllocator({ host: '127.0.0.1', min, max: min + 9 }),
      log: silentLogger,
      spares,
    });
  return [make(minPort), make(minPort + 10)] as const;
}

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
  const closers: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const close of closers.reverse()) await close(); // the last test's first: the earlier closers check that nothing is left
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
    // a refresh whose answer lowered it again (a vL3 endpoint): both ends follow, same devices
    const link = (ns: string, ifname: string) => JSON.parse(spawnSync('ip', ['-n', ns, '-j', 'link', 'show', ifname], { encoding: 'utf8' }).stdout)[0];
    const before = [link(nsc.name, 'nsm-1').ifindex, link(nse.name, 'nsm-e').ifindex];
    await dp.update(c, client, serverPeer, 1340);
    await dp.update(e, server, clientPeer, 1340);
    expect([link(nsc.name, 'nsm-1'), link(nse.name, 'nsm-e')].map((l) => [l.ifindex, l.mtu])).toEqual([
      [before[0], 1340],
      [before[1], 1340],
    ]);
    expect(ping(nsc.name, '172.16.5.1')).toBe(true);

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

  it('keeps spares waiting, down, where the last end was moved; the next end there only renames one; they leave when nothing is left there', async () => {
    // Two dataplanes, as two agents: one requests (nsc), one serves (nse). The first test
    // closed the shared one.
    const [dpC, dpS] = twoDataplanes(54111, 2);
    closers.push(async () => {
      await dpC.close!();
      await dpS.close!();
      expect(liveWireguardDevices()).toHaveLength(0);
    });
    const waiting = (ns: string): { ifname: string; ifindex: number; operstate: string }[] =>
      JSON.parse(spawnSync('ip', ['-n', ns, '-j', 'link', 'show'], { encoding: 'utf8' }).stdout).filter((l: { ifname: string }) =>
        l.ifname.startsWith('nsmwg'),
      );
    const ifindexOf = (ns: string, ifname: string): number =>
      JSON.parse(spawnSync('ip', ['-n', ns, '-j', 'link', 'show', ifname], { encoding: 'utf8' }).stdout)[0].ifindex;
    const connect = async (n: number) => {
      const client = await dpC.allocate('src', undefined);
      const server = await dpS.allocate('dst', undefined);
      const clientPeer = dpS.peerOf(dpC.advertise(client, 'src'), 'src');
      const serverPeer = dpC.peerOf(dpS.advertise(server, 'dst'), 'dst');
      const cTarget = { netns: nsc.path, ifname: `nsm-c${n}` };
      const cPrep = await dpC.prepare!({ local: client, target: cTarget, mtu: 1440 });
      const sPrep = await dpS.prepare!({ local: server, peer: clientPeer, mtu: 1440 });
      const side = (a: number, b: number) => ({ addrs: [`172.16.6.${a}/32`], peers: [`172.16.6.${b}/32`], routes: [] });
      const e = await dpS.create({ local: server, peer: clientPeer, target: { netns: nse.path, ifname: `nsm-e${n}` }, mtu: 1440, side: side(n * 2 + 1, n * 2 + 2), prepared: sPrep });
      const c = await dpC.create({ local: client, peer: serverPeer, target: cTarget, mtu: 1440, side: side(n * 2 + 2, n * 2 + 1), prepared: cPrep });
      return { c, e, release: () => (dpC.release(client), dpS.release(server)) };
    };
    const until = async (cond: () => boolean) => {
      const deadline = Date.now() + 5000;
      while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      return cond();
    };

    const first = await connect(1); // spares waited in the host namespace: both ends were moved
    expect(await until(() => waiting(nse.name).length === 2 && waiting(nsc.name).length === 2)).toBe(true);
    const spares = { nse: waiting(nse.name), nsc: waiting(nsc.name) };
    expect([...spares.nse, ...spares.nsc].every((l) => l.operstate === 'DOWN')).toBe(true);

    const second = await connect(2);
    // the same links, renamed where they waited
    expect(spares.nse.map((l) => l.ifindex)).toContain(ifindexOf(nse.name, 'nsm-e2'));
    expect(spares.nsc.map((l) => l.ifindex)).toContain(ifindexOf(nsc.name, 'nsm-c2'));
    expect(ping(nsc.name, '172.16.6.5')).toBe(true);
    expect(ping(nse.name, '172.16.6.6')).toBe(true);
    expect(ping(nsc.name, '172.16.6.3')).toBe(true);

    for (const x of [first, second]) {
      await dpC.remove(x.c);
      await dpS.remove(x.e);
      x.release();
    }
    // no connection end left there: after SPARE_HOME_IDLE_MS no spare waits in either namespace
    expect(await until(() => waiting(nse.name).length + waiting(nsc.name).length === 0)).toBe(true);
    // made again in the host namespace
    expect(await until(() => liveWireguardDevices().length === 4 && liveWireguardDevices().every((d) => d.netns === undefined))).toBe(true);
  }, 30_000);

  it('hands out a spare\'s key and port (set ahead) and keeps an end closed where spares wait as a spare: no peer, new key and port, down, no addresses', async () => {
    const [dpC, dpS] = twoDataplanes(54131, 1);
    const open: (() => Promise<void>)[] = [];
    closers.push(async () => {
      for (const undo of open.splice(0)) await undo().catch(() => {});
      await dpC.close!();
      await dpS.close!();
    });
    const links = (ns: string): { ifname: string; ifindex: number; operstate: string }[] =>
      JSON.parse(spawnSync('ip', ['-n', ns, '-j', 'link', 'show'], { encoding: 'utf8' }).stdout);
    const until = async (cond: () => boolean) => {
      const deadline = Date.now() + 5000;
      while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      return cond();
    };
    const wgShow = (hostName: string) => spawnSync('wg', ['show', hostName, 'dump'], { encoding: 'utf8' }).stdout.trim().split('\n');
    const connect = async (n: number) => {
      const client = await dpC.allocate('src', undefined);
      const server = await dpS.allocate('dst', undefined);
      const cTarget = { netns: nsc.path, ifname: `nsm-r${n}` };
      const cPrep = await dpC.prepare!({ local: client, target: cTarget, mtu: 1440 });
      const clientPeer = dpS.peerOf(dpC.advertise(client, 'src'), 'src');
      const sPrep = await dpS.prepare!({ local: server, peer: clientPeer, mtu: 1440 });
      const side = (a: number, b: number) => ({ addrs: [`172.16.7.${a}/32`], peers: [`172.16.7.${b}/32`], routes: [] });
      const e = await dpS.create({ local: server, peer: clientPeer, target: { netns: nse.path, ifname: `nsm-s${n}` }, mtu: 1440, side: side(2 * n + 1, 2 * n + 2), prepared: sPrep });
      const serverPeer = dpC.peerOf(dpS.advertise(server, 'dst'), 'dst');
      const c = await dpC.create({ local: client, peer: serverPeer, target: cTarget, mtu: 1440, side: side(2 * n + 2, 2 * n + 1), prepared: cPrep });
      open.push(() => dpC.remove(c), () => dpS.remove(e)); // if the test fails before it removes them (removing twice is harmless)
      return { c, e, client, server };
    };

    const first = await connect(1); // makes spares wait in both namespaces
    expect(await until(() => links(nse.name).filter((l) => l.ifname.startsWith('nsmwg')).length === 1)).toBe(true);
    await new Promise((r) => setTimeout(r, 200)); // moved there: listed as a spare a moment later
    const waitingName = links(nse.name).find((l) => l.ifname.startsWith('nsmwg'))!.ifname;
    const spare = liveWireguardDevices().find((d) => d.hostName === waitingName)!;
    // the spare already listens on its own port with its own key, and has no peer
    expect(wgShow(spare.hostName)).toHaveLength(1);
    expect(spare.listenPort).toBeGreaterThanOrEqual(54141);

    // the next connection takes the spare's values: only its peer is added
    const local = await dpS.allocate('dst', undefined);
    expect(local.port).toBe(spare.listenPort);
    expect(wgShow(spare.hostName)[0]!.split('\t')[1]).toBe(local.keys.publicKey);
    // ...and when it goes no further, the device goes with its values
    dpS.release(local);
    expect(await until(() => !liveWireguardDevices().some((d) => d.hostName === spare.hostName))).toBe(true);

    const second = await connect(2);
    expect(ping(nsc.name, '172.16.7.5')).toBe(true);
    // closed where spares wait (and one is missing): the same link becomes the spare
    const ended = dpS.describe(second.e) as { device: string };
    const index = links(nse.name).find((l) => l.ifname === 'nsm-s2')!.ifindex;
    await dpS.remove(second.e);
    dpS.release(second.server);
    const kept = links(nse.name).find((l) => l.ifindex === index);
    expect(kept?.ifname).toMatch(/^nsmwg/);
    expect(kept?.operstate).toBe('DOWN');
    expect(spawnSync('ip', ['-n', nse.name, '-j', 'addr', 'show', 'dev', kept!.ifname], { encoding: 'utf8' }).stdout).not.toContain('172.16.7');
    expect(spawnSync('ip', ['-n', nse.name, 'route', 'show', 'dev', kept!.ifname], { encoding: 'utf8' }).stdout.trim()).toBe('');
    const dump = wgShow(ended.device);
    expect(dump).toHaveLength(1); // no peer
    const [, pub, port] = dump[0]!.split('\t');
    expect(pub).not.toBe(second.server.keys.publicKey);
    expect(Number(port)).not.toBe(second.server.port);
    expect(ping(nsc.name, '172.16.7.5')).toBe(false);
    // the first connection is untouched
    expect(ping(nsc.name, '172.16.7.3')).toBe(true);

    for (const x of [first]) {
      await dpC.remove(x.c);
      await dpS.remove(x.e);
      dpC.release(x.client);
      dpS.release(x.server);
    }
    await dpC.remove(second.c);
    dpC.release(second.client);
  }, 30_000);

  it('replaces a listen port that another socket took after the probe, and the device listens on the new one', async () => {
    // The allocator hands out the next port, then a "thief" binds it: the race the probe cannot
    // close. An end closed where a spare is missing becomes the spare with a new port, set while
    // the device is up: wireguard-go answers EADDRINUSE, and the dataplane takes another port.
    let thief: Socket | undefined;
    let steal = false;
    class RacyAllocator extends UdpPortAllocator {
      override async allocate(): Promise<number> {
        const port = await super.allocate();
        if (steal) {
          steal = false;
          thief = createSocket('udp4');
          await new Promise<void>((r) => thief!.bind({ port, address: '0.0.0.0', exclusive: true }, () => r()));
        }
        return port;
      }
    }
    // No refill while the test runs: the closed end must find the spare missing, however long
    // the connect took (a refill started meanwhile would make it the spare instead).
    const make = (min: number) =>
      wireguardDataplane({
        underlay: { ip: '127.0.0.1', family: 4, mtu: 1500 },
        ports: new RacyAllocator({ host: '127.0.0.1', min, max: min + 9 }),
        log: silentLogger,
        spares: 1,
        spareRefillDelayMs: 60_000,
      });
    const dpC = make(54151);
    const dpS = make(54161);
    const ends: (() => Promise<void>)[] = [];
    closers.push(async () => {
      for (const undo of ends.splice(0)) await undo().catch(() => {});
      thief?.close();
      await dpC.close!();
      await dpS.close!();
    });
    const connect = async (n: number) => {
      const client = await dpC.allocate('src', undefined);
      const server = await dpS.allocate('dst', undefined);
      const side = (a: number, b: number) => ({ addrs: [`172.16.8.${a}/32`], peers: [`172.16.8.${b}/32`], routes: [] });
      const e = await dpS.create({ local: server, peer: dpS.peerOf(dpC.advertise(client, 'src'), 'src'), target: { netns: nse.path, ifname: `nsm-t${n}` }, mtu: 1440, side: side(2 * n + 1, 2 * n + 2) });
      const c = await dpC.create({ local: client, peer: dpC.peerOf(dpS.advertise(server, 'dst'), 'dst'), target: { netns: nsc.path, ifname: `nsm-t${n}` }, mtu: 1440, side: side(2 * n + 2, 2 * n + 1) });
      ends.push(() => dpC.remove(c), () => dpS.remove(e));
      return { c, e, client, server };
    };

    const first = await connect(1); // no spare yet: the serving end's device becomes home's spare when closed
    const device = (dpS.describe(first.e) as { device: string }).device;
    steal = true;
    await dpS.remove(first.e);
    dpS.release(first.server);
    expect(thief).toBeDefined();
    const stolen = (thief!.address() as { port: number }).port;
    const kept = liveWireguardDevices().find((d) => d.hostName === device);
    expect(kept?.listenPort).toBeGreaterThanOrEqual(54161);
    expect(kept?.listenPort).not.toBe(stolen);

    // the next connection there takes that spare's port, and packets flow through it
    const second = await connect(2);
    expect(second.server.port).toBe(kept!.listenPort);
    expect(ping(nsc.name, '172.16.8.5')).toBe(true);
    for (const x of [first, second]) {
      if (x === second) await dpS.remove(x.e), dpS.release(x.server);
      await dpC.remove(x.c);
      dpC.release(x.client);
    }
  }, 30_000);

  it('refuses a malformed peer key naming the parameter', () => {
    expect(() => dp.peerOf({ dst_ip: '127.0.0.1', dst_port: '1', dst_public_key: 'abc' }, 'dst')).toThrow(/dst_public_key: malformed WireGuard public key/);
  });
});
