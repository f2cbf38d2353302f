// SPDX-License-Identifier: Apache-2.0
// Root + wireguard-go only: two namespaces joined by per-connection
// wireguard-go devices created in the host ns (underlay 127.0.0.1), moved and
// renamed to nsm-1, then pinged; supervisor restart after SIGKILL; delete;
// bad keys; name collisions.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  UdpPortAllocator,
  WireguardGo,
  generateKeyPair,
  kernelWireguardSupported,
  liveWireguardDevices,
  tempWireguardName,
  uapiSocketPath,
  type WireguardDeviceInfo,
  type WgKeyPair,
} from '../../../src/mechanisms/wireguard';
import { Rtnl, addAddress, getLink, replaceRoute, type Netns } from '../../../src/sys';
import { tempNetns } from '../../helpers/netns';

const root = process.getuid?.() === 0;
const hasWgGo = spawnSync('sh', ['-c', 'command -v wireguard-go && command -v wg && command -v ping']).status === 0;

function ping(ns: string, ip: string, waitS = '1'): boolean {
  return spawnSync('ip', ['netns', 'exec', ns, 'ping', '-c', '1', '-W', waitS, ip], { stdio: 'ignore' }).status === 0;
}
async function pingUntil(ns: string, ip: string, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (ping(ns, ip, '0.1')) return Date.now() - t0;
  }
  return -1;
}
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
  } catch {
    return false;
  }
}

describe.skipIf(!root || !hasWgGo)('wireguard-go devices between two namespaces', () => {
  const tmp = tempNetns('wg');
  const spawned = new Set<number>();
  const devices: WireguardGo[] = [];
  const ports = new UdpPortAllocator({ host: '127.0.0.1' });
  let a: Netns & { name: string };
  let b: Netns & { name: string };
  let keyA: WgKeyPair;
  let keyB: WgKeyPair;
  let devA: WireguardGo;
  let devB: WireguardGo;

  /** Addresses + onlink route on the moved link (re-run after a restart). */
  async function l3(ns: Netns, info: WireguardDeviceInfo, local: string, remote: string): Promise<void> {
    const rtnl = Rtnl.for(ns);
    const index = info.ifindex ?? (await getLink(rtnl, info.name))?.index;
    if (index === undefined) throw new Error(`no ${info.name}`);
    await addAddress(rtnl, index, `${local}/32`, { replace: true });
    await replaceRoute(rtnl, { dst: `${remote}/32`, index, scope: 'link' });
  }

  function device(afterRestart?: (info: WireguardDeviceInfo) => Promise<void>): WireguardGo {
    const d = new WireguardGo(afterRestart ? { afterRestart } : {});
    d.on('spawned', ({ pid }: { pid: number }) => spawned.add(pid));
    devices.push(d);
    return d;
  }

  beforeAll(async () => {
    a = await tmp.create('a');
    b = await tmp.create('b');
    keyA = generateKeyPair();
    keyB = generateKeyPair();
  });

  afterAll(async () => {
    for (const d of devices) await d.delete().catch(() => {});
    for (const pid of spawned) {
      // Safety net, by PID only, and only if it still is a wireguard-go.
      try {
        if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('wireguard-go')) process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await tmp.cleanup();
  });

  it('detects that the kernel has no WireGuard', async () => {
    expect(typeof (await kernelWireguardSupported())).toBe('boolean');
  });

  it('creates, configures and moves two devices; ping works both ways', async () => {
    const portA = await ports.allocate();
    const portB = await ports.allocate();
    expect(portA).not.toBe(portB);
    devA = device((info) => l3(a, info, '10.201.0.1', '10.201.0.2'));
    devB = device((info) => l3(b, info, '10.201.0.2', '10.201.0.1'));
    const t0 = performance.now();
    await Promise.all([devA.create(), devB.create()]);
    const tCreated = performance.now();
    await devA.configure({ privateKey: keyA.privateKey, listenPort: portA, peer: { publicKey: keyB.publicKey, endpoint: `127.0.0.1:${portB}` } });
    await devB.configure({ privateKey: keyB.privateKey, listenPort: portB, peer: { publicKey: keyA.publicKey, endpoint: `127.0.0.1:${portA}` } });
    await devA.move(a, 'nsm-1', { mtu: 1380 });
    await devB.move(b, 'nsm-1', { mtu: 1380 });
    await l3(a, devA.info(), '10.201.0.1', '10.201.0.2');
    await l3(b, devB.info(), '10.201.0.2', '10.201.0.1');
    const tReady = performance.now();
    const pingMs = await pingUntil(a.name, '10.201.0.2', 10_000);
    const total = performance.now() - t0;
    console.log(
      `[wg] create x2 ${(tCreated - t0).toFixed(0)} ms, configure+move+l3 ${(tReady - tCreated).toFixed(0)} ms, ` +
        `first ping after ${pingMs} ms; create -> ping ${total.toFixed(0)} ms`,
    );
    expect(pingMs).toBeGreaterThanOrEqual(0);
    expect(ping(b.name, '10.201.0.1')).toBe(true);
    expect(ping(a.name, '10.201.0.2')).toBe(true);

    const ia = devA.info();
    expect(ia).toMatchObject({ state: 'running', name: 'nsm-1', netns: expect.any(String), mtu: 1380, listenPort: portA });
    expect(ia.hostName).toMatch(/^nsmwg[0-9a-f]{10}$/);
    expect(existsSync(uapiSocketPath(ia.hostName))).toBe(true); // keeps the temporary name
    const link = await getLink(Rtnl.for(a), 'nsm-1');
    expect(link).toMatchObject({ mtu: 1380, up: true });
    expect(await getLink(Rtnl.for(a), ia.hostName)).toBeUndefined();
    expect(liveWireguardDevices().map((d) => d.hostName)).toEqual(expect.arrayContaining([ia.hostName, devB.info().hostName]));

    const st = await devA.status();
    expect(st.listenPort).toBe(portA);
    expect(st.peers).toHaveLength(1);
    expect(st.peers[0]).toMatchObject({ publicKey: keyB.publicKey, endpoint: `127.0.0.1:${portB}`, persistentKeepalive: 10 });
    expect(st.peers[0]?.allowedIps.sort()).toEqual(['0.0.0.0/0', '::/0']);
    expect(st.peers[0]?.lastHandshake).toBeInstanceOf(Date);
  });

  it('wg show lists both devices (by their temporary names) with a peer and a recent handshake', () => {
    const show = spawnSync('wg', ['show'], { encoding: 'utf8' });
    console.log(`[wg] wg show:\n${show.stdout}`);
    const dump = spawnSync('wg', ['show', 'all', 'dump'], { encoding: 'utf8' }).stdout;
    const now = Date.now() / 1000;
    for (const [dev, peerKey] of [
      [devA, keyB.publicKey],
      [devB, keyA.publicKey],
    ] as const) {
      const name = dev.info().hostName;
      expect(show.stdout).toContain(`interface: ${name}`);
      const peerLine = dump.split('\n').find((l) => l.startsWith(`${name}\t${peerKey}\t`));
      expect(peerLine, dump).toBeDefined();
      const cols = (peerLine ?? '').split('\t');
      expect(cols[4]).toBe('0.0.0.0/0,::/0');
      expect(now - Number(cols[5])).toBeLessThan(30); // latest handshake
      expect(cols[8]).toBe('10');
    }
  });

  it('restarts a SIGKILLed wireguard-go and ping works again within 1 s', async () => {
    const before = devA.info();
    const pid = before.pid;
    expect(pid).toBeDefined();
    const restarted = new Promise<{ ms: number; pid: number }>((resolve) => devA.once('restarted', resolve));
    const t0 = performance.now();
    process.kill(pid as number, 'SIGKILL');
    const ev = await restarted;
    const tBack = performance.now() - t0;
    const pingMs = await pingUntil(a.name, '10.201.0.2', 5000);
    const total = performance.now() - t0;
    console.log(`[wg] SIGKILL -> restarted+reconfigured+moved ${tBack.toFixed(0)} ms (supervisor: ${ev.ms} ms), -> ping ${total.toFixed(0)} ms`);
    expect(pingMs).toBeGreaterThanOrEqual(0);
    expect(total).toBeLessThan(1000);
    const after = devA.info();
    expect(after.pid).not.toBe(pid);
    expect(alive(pid as number)).toBe(false);
    expect(after).toMatchObject({ state: 'running', restarts: 1, name: 'nsm-1', hostName: before.hostName, listenPort: before.listenPort, mtu: 1380 });
    expect(ping(b.name, '10.201.0.1')).toBe(true);
    expect((await devA.status()).privateKey).toBe(keyA.privateKey);
  });

  it('rejects malformed keys', async () => {
    const d = device();
    await d.create();
    await expect(
      d.configure({ privateKey: keyA.privateKey, listenPort: 52800, peer: { publicKey: 'not-a-key', endpoint: '127.0.0.1:1' } }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: 'malformed WireGuard public key' });
    await expect(
      d.configure({ privateKey: keyA.privateKey, listenPort: 52800, peer: { publicKey: Buffer.alloc(31).toString('base64'), endpoint: '127.0.0.1:1' } }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect((await d.status()).peers).toHaveLength(0); // nothing half-applied
    await d.delete();
  });

  it('handles name collisions', async () => {
    const name = tempWireguardName();
    const d1 = device();
    await d1.create(name);
    const d2 = device();
    await expect(d2.create(name)).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    await expect(device().create('--help')).rejects.toMatchObject({ code: 'INVALID_INTERFACE_NAME' });
    // The target name is taken in A (devA's nsm-1): refused, device stays usable in the host ns.
    await expect(d1.move(a, 'nsm-1')).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    expect(await getLink(Rtnl.for(a), 'nsm-1')).toMatchObject({ up: true });
    expect(ping(a.name, '10.201.0.2')).toBe(true);
    await d1.move(a, 'nsm-2');
    expect(await getLink(Rtnl.for(a), 'nsm-2')).toBeDefined();
    await d1.delete();
    expect(await getLink(Rtnl.for(a), 'nsm-2')).toBeUndefined();
    // After delete the name is free again.
    await d2.create(name);
    await d2.delete();
  });

  it('delete removes the link, the process and the socket', async () => {
    const names = [devA.info().hostName, devB.info().hostName];
    for (const [dev, ns] of [
      [devA, a],
      [devB, b],
    ] as const) {
      const info = dev.info();
      const pid = info.pid as number;
      await dev.delete();
      expect(alive(pid)).toBe(false);
      expect(existsSync(uapiSocketPath(info.hostName))).toBe(false);
      expect(await getLink(Rtnl.for(ns), 'nsm-1')).toBeUndefined();
      expect(dev.info().state).toBe('deleted');
      await dev.delete(); // idempotent
      ports.release(info.listenPort as number);
    }
    expect(ping(a.name, '10.201.0.2')).toBe(false);
    // only this test's devices: other agents on the machine may have their own
    const listed = spawnSync('wg', ['show', 'interfaces'], { encoding: 'utf8' }).stdout.split(/\s+/);
    for (const n of names) expect(listed).not.toContain(n);
  });
});
