// SPDX-License-Identifier: Apache-2.0
// Root only: addresses, routes and neighbours on both ends of a veth pair,
// checked with real pings (ip netns exec ... ping; test-side only).
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Rtnl,
  addAddress,
  createVethPair,
  delAddress,
  delNeighbor,
  delRoute,
  hostNetns,
  listAddresses,
  listNeighbors,
  listRoutes,
  replaceNeighbor,
  replaceRoute,
  type Netns,
  type VethPair,
} from '../../../src/sys';
import { tempNetns } from '../../helpers/netns';

const root = process.getuid?.() === 0;

function hasPing(): boolean {
  try {
    execFileSync('ping', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function ping(ns: { name: string }, ip: string): boolean {
  try {
    execFileSync('ip', ['netns', 'exec', ns.name, 'ping', '-c', '1', '-W', '1', ip], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(!root)('addresses, routes, neighbours', () => {
  const tmp = tempNetns('l3');
  let a: Netns & { name: string };
  let b: Netns & { name: string };
  let pair: VethPair;

  beforeAll(async () => {
    if (!hasPing()) {
      execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'iputils-ping'], {
        stdio: 'ignore',
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
    }
    a = await tmp.create('a');
    b = await tmp.create('b');
    pair = await createVethPair(
      Rtnl.for(hostNetns()),
      { name: 'nsmt-la', ns: a, mtu: 1400, up: true },
      { name: 'nsmt-lb', ns: b, mtu: 1400, up: true },
    );
  });
  afterAll(async () => {
    await tmp.cleanup();
    Rtnl.closeAll();
  });

  it('configures /32 and /128 addresses, on-link routes and permanent neighbours; ping works', async () => {
    const ra = Rtnl.for(a);
    const rb = Rtnl.for(b);
    const ia = pair.a.index;
    const ib = pair.b.index;
    // Point-to-point style as NSM does it: host addresses, routes to the peer
    // on the link, a subnet via the peer (onlink), static neighbours.
    await Promise.all([
      addAddress(ra, ia, '172.31.0.1/32'),
      addAddress(ra, ia, 'fd31::1/128', { noDad: true }),
      addAddress(rb, ib, '172.31.0.2/32'),
      addAddress(rb, ib, 'fd31::2/128', { noDad: true }),
      addAddress(rb, ib, '10.77.0.1/32'),
    ]);
    await Promise.all([
      replaceRoute(ra, { dst: '172.31.0.2/32', index: ia }),
      replaceRoute(ra, { dst: '10.77.0.0/24', index: ia, via: '172.31.0.2', onlink: true }),
      replaceRoute(ra, { dst: 'fd31::2/128', index: ia }),
      replaceRoute(rb, { dst: '172.31.0.1/32', index: ib }),
      replaceRoute(rb, { dst: 'fd31::1/128', index: ib }),
      replaceNeighbor(ra, { index: ia, ip: '172.31.0.2', mac: pair.b.mac!, permanent: true }),
      replaceNeighbor(ra, { index: ia, ip: 'fd31::2', mac: pair.b.mac!, permanent: true }),
      replaceNeighbor(rb, { index: ib, ip: '172.31.0.1', mac: pair.a.mac!, permanent: true }),
      replaceNeighbor(rb, { index: ib, ip: 'fd31::1', mac: pair.a.mac!, permanent: true }),
    ]);

    expect((await listAddresses(ra, ia)).filter((x) => !x.address.startsWith('fe80')).map((x) => x.cidr)).toEqual([
      '172.31.0.1/32',
      'fd31::1/128',
    ]);
    const routes = await listRoutes(ra, 4);
    expect(routes).toContainEqual(expect.objectContaining({ dst: '10.77.0.0/24', via: '172.31.0.2', onlink: true, index: ia }));
    expect(routes).toContainEqual(expect.objectContaining({ dst: '172.31.0.2/32', scope: 253, index: ia }));
    expect(await listRoutes(ra, 6)).toContainEqual(expect.objectContaining({ dst: 'fd31::2/128', index: ia }));
    const neigh = await listNeighbors(ra, ia);
    expect(neigh).toContainEqual({ index: ia, family: 4, ip: '172.31.0.2', mac: pair.b.mac, permanent: true });
    expect(neigh).toContainEqual({ index: ia, family: 6, ip: 'fd31::2', mac: pair.b.mac, permanent: true });

    expect(ping(a, '172.31.0.2')).toBe(true);
    expect(ping(a, 'fd31::2')).toBe(true);
    expect(ping(a, '10.77.0.1')).toBe(true); // via the onlink route
    expect(ping(b, '172.31.0.1')).toBe(true);
  });

  it('replace is idempotent; add is exclusive; deletes remove exactly one entry', async () => {
    const ra = Rtnl.for(a);
    const ia = pair.a.index;
    await addAddress(ra, ia, '192.0.2.10/24');
    await expect(addAddress(ra, ia, '192.0.2.10/24')).rejects.toMatchObject({ code: 'EEXIST', syscall: 'RTM_NEWADDR' });
    await addAddress(ra, ia, '192.0.2.10/24', { replace: true });
    await replaceRoute(ra, { dst: '198.51.100.0/24', index: ia, via: '192.0.2.1' });
    await replaceRoute(ra, { dst: '198.51.100.0/24', index: ia, via: '192.0.2.2', metric: 5 });
    expect((await listRoutes(ra, 4)).filter((r) => r.dst === '198.51.100.0/24')).toHaveLength(2); // metric differs
    await delRoute(ra, { dst: '198.51.100.0/24', via: '192.0.2.1' });
    await expect(delRoute(ra, { dst: '198.51.100.0/24', via: '192.0.2.1' })).rejects.toMatchObject({ code: 'ESRCH' });
    await delRoute(ra, { dst: '198.51.100.0/24' });
    // Tables above 255 travel in RTA_TABLE.
    await replaceRoute(ra, { dst: '0.0.0.0/0', index: ia, via: '192.0.2.1', table: 1000 });
    expect(await listRoutes(ra, 4, 1000)).toEqual([
      expect.objectContaining({ dst: '0.0.0.0/0', via: '192.0.2.1', table: 1000, index: ia }),
    ]);
    expect((await listRoutes(ra, 4)).map((r) => r.dst)).not.toContain('0.0.0.0/0');
    await delRoute(ra, { dst: '0.0.0.0/0', table: 1000 });
    expect(await listRoutes(ra, 4, 1000)).toEqual([]);
    await replaceNeighbor(ra, { index: ia, ip: '192.0.2.20', mac: '02:00:00:00:00:20', permanent: false });
    await replaceNeighbor(ra, { index: ia, ip: '192.0.2.20', mac: '02:00:00:00:00:21', permanent: true });
    expect((await listNeighbors(ra, ia)).filter((n) => n.ip === '192.0.2.20')).toEqual([
      { index: ia, family: 4, ip: '192.0.2.20', mac: '02:00:00:00:00:21', permanent: true },
    ]);
    await delNeighbor(ra, ia, '192.0.2.20');
    await delAddress(ra, ia, '192.0.2.10/24');
    await expect(delAddress(ra, ia, '192.0.2.10/24')).rejects.toMatchObject({ code: 'EADDRNOTAVAIL' });
    expect((await listAddresses(ra, ia)).map((x) => x.address)).not.toContain('192.0.2.10');
  });

  it('validates arguments before sending', async () => {
    const ra = Rtnl.for(a);
    await expect(addAddress(ra, pair.a.index, '10.0.0.300/24')).rejects.toMatchObject({ code: 'EINVAL', path: '10.0.0.300' });
    await expect(addAddress(ra, pair.a.index, '10.0.0.1/33')).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(replaceRoute(ra, { dst: '10.0.0.0/8', index: pair.a.index, via: 'fd00::1' })).rejects.toMatchObject({
      code: 'EINVAL',
    });
    await expect(replaceNeighbor(ra, { index: pair.a.index, ip: '10.0.0.1', mac: 'zz', permanent: true })).rejects.toMatchObject({
      code: 'EINVAL',
    });
  });
});
