// The WireGuard dataplane after an agent restart, against in-memory devices and records: which
// connection ends it takes back and which it reaps, and what it records.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../../src/core/log';
import type { Records } from '../../../../src/core/records';
import { generateKeyPair, UdpPortAllocator } from '../../../../src/mechanisms/wireguard';
import type { WireguardDevice, WireguardDeviceInfo, WireguardSnapshot } from '../../../../src/mechanisms/wireguard';
import { wireguardDataplane, type WgRecord } from '../../../../src/mechanisms/wireguard/dataplane';
import type { DeviceFactory } from '../../../../src/mechanisms/wireguard/factory';

/** A device that lives in memory (taken back from a snapshot). */
class FakeDevice extends EventEmitter implements WireguardDevice {
  state: WireguardDeviceInfo['state'] = 'running';
  constructor(private readonly snap: WireguardSnapshot) {
    super();
  }
  async create() {}
  async configure() {}
  async move() {}
  async delete() {
    this.state = 'deleted';
  }
  info(): WireguardDeviceInfo {
    return { impl: this.snap.impl, state: this.state, hostName: this.snap.hostName, name: this.snap.name, restarts: 0, pid: this.snap.pid };
  }
  snapshot(): WireguardSnapshot {
    return { ...this.snap };
  }
}

/** Devices a previous run left: `alive` host names can be taken back, the others cannot. */
function leftDevices(alive: string[]) {
  const adopted: FakeDevice[] = [];
  const reaped: string[] = [];
  const devices: DeviceFactory = {
    make: () => {
      throw new Error('no new devices in this test');
    },
    async adopt(snap) {
      if (!alive.includes(snap.hostName)) throw new Error(`${snap.hostName}: link not found`);
      const d = new FakeDevice(snap);
      adopted.push(d);
      return d;
    },
    async reap(snap) {
      reaped.push(snap.hostName);
    },
  };
  return { devices, adopted, reaped };
}

/** Records in memory, with the leftovers of a previous run. */
function memoryRecords(left: Record<string, WgRecord>): Records<WgRecord> & { stored: Map<string, WgRecord> } {
  const stored = new Map(Object.entries(left));
  const leftovers = new Set(stored.keys());
  return {
    stored,
    put: (k, v) => void stored.set(k, v),
    delete: (k) => void (stored.delete(k), leftovers.delete(k)),
    claim: (k) => (leftovers.delete(k) ? stored.get(k) : undefined),
    leftovers: () => [...leftovers].map((k) => [k, stored.get(k)!] as [string, WgRecord]),
  };
}

const snap = (hostName: string): WireguardSnapshot => ({
  impl: 'wireguard-go',
  hostName,
  pid: 4242,
  netns: '/run/netns/c',
  name: 'nsm-1',
  move: { mtu: 1420, up: true },
});
const connRecord = (hostName: string, port: number): WgRecord => ({
  expires: Date.now() + 60_000,
  device: snap(hostName),
  local: { keys: generateKeyPair(), port },
  target: { netns: '/run/netns/c', ifname: 'nsm-1' },
  side: { addrs: ['172.16.0.2/32'], peers: ['172.16.0.1/32'], routes: [] },
  peer: { publicKey: generateKeyPair().publicKey, ip: '10.0.0.2', port: 51900 },
});

function dataplane(records: Records<WgRecord>, devices: DeviceFactory, ports = new UdpPortAllocator({ host: '127.0.0.1', min: 51820, max: 51829 })) {
  return { dp: wireguardDataplane({ underlay: { ip: '10.0.0.1', family: 4, mtu: 1500 }, ports, log: silentLogger, records, devices }), ports };
}

describe('WireGuard dataplane after a restart', () => {
  it('takes back a recorded end whose device is still there: same values, port reserved, described', async () => {
    const rec = connRecord('nsmwgaaaaaaaaaa', 51821);
    const records = memoryRecords({ 'conn:c1': rec });
    const { devices, adopted, reaped } = leftDevices(['nsmwgaaaaaaaaaa']);
    const { dp, ports } = dataplane(records, devices);
    const back = await dp.adopt!('c1');
    expect(back?.local).toEqual(rec.local);
    expect(back?.device).toMatchObject({ target: rec.target, side: rec.side, peer: rec.peer });
    expect(adopted).toHaveLength(1);
    expect(reaped).toEqual([]);
    expect(ports.allocated).toEqual([51821]);
    expect(dp.describe(back!.device)).toMatchObject({ type: 'WIREGUARD', ifname: 'nsm-1', device: 'nsmwgaaaaaaaaaa', pid: 4242 });
    // nothing else to take back for another id
    expect(await dp.adopt!('c2')).toBeUndefined();
    // recorded again under the connection, then removed with it
    dp.persist!('c1', back!.local, back!.device, 123);
    expect(records.stored.get('conn:c1')).toMatchObject({ expires: 123, device: { hostName: 'nsmwgaaaaaaaaaa' } });
    await dp.remove(back!.device);
    dp.forget!('c1');
    dp.release(back!.local);
    expect(adopted[0]!.state).toBe('deleted');
    expect(records.stored.has('conn:c1')).toBe(false);
    expect(ports.allocated).toEqual([]);
    await dp.close!();
  });

  it('reaps a recorded end whose device cannot be taken back, and forgets its record', async () => {
    const records = memoryRecords({ 'conn:c1': connRecord('nsmwgbbbbbbbbbb', 51822) });
    const { devices, adopted, reaped } = leftDevices([]);
    const { dp, ports } = dataplane(records, devices);
    expect(await dp.adopt!('c1')).toBeUndefined();
    expect(adopted).toHaveLength(0);
    expect(reaped).toEqual(['nsmwgbbbbbbbbbb']);
    expect(records.stored.has('conn:c1')).toBe(false);
    expect(ports.allocated).toEqual([]);
  });

  it('reaps a record that lacks what the end needs (values, target, side or peer) without trying to take it back', async () => {
    const { local: _dropped, ...partial } = connRecord('nsmwgcccccccccc', 51823);
    const records = memoryRecords({ 'conn:c1': partial });
    const { devices, adopted, reaped } = leftDevices(['nsmwgcccccccccc']);
    const { dp } = dataplane(records, devices);
    expect(await dp.adopt!('c1')).toBeUndefined();
    expect(adopted).toHaveLength(0);
    expect(reaped).toEqual(['nsmwgcccccccccc']);
    expect(records.stored.has('conn:c1')).toBe(false);
  });

  it('takes back an end whose port is taken here meanwhile, still using it', async () => {
    const records = memoryRecords({ 'conn:c1': connRecord('nsmwgdddddddddd', 51824) });
    const { devices } = leftDevices(['nsmwgdddddddddd']);
    const ports = new UdpPortAllocator({ host: '127.0.0.1', min: 51820, max: 51829 });
    ports.reserve(51824);
    const { dp } = dataplane(records, devices, ports);
    expect((await dp.adopt!('c1'))?.local.port).toBe(51824);
  });
});
