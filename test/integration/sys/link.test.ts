// SPDX-License-Identifier: Apache-2.0
// Root only: veth pairs across namespaces, link changes, vxlan, errors.
import { afterAll, describe, expect, it, vi } from 'vitest';
import {
  Rtnl,
  SysError,
  addAddress,
  addAddressRequest,
  createVethPair,
  createVethPairNow,
  createVxlan,
  deleteLink,
  getLink,
  getLinkRequest,
  hostNetns,
  linkOf,
  listLinks,
  moveLink,
  openNetns,
  renameLink,
  setLinkAlias,
  setLinkUp,
  setLinkUpRequest,
  setMtu,
} from '../../../src/sys';
import { tempNetns } from '../../helpers/netns';

const root = process.getuid?.() === 0;

describe.skipIf(!root)('links', () => {
  const tmp = tempNetns('link');
  afterAll(async () => {
    await tmp.cleanup();
    Rtnl.closeAll();
  });
  const host = (): Rtnl => Rtnl.for(hostNetns());

  it('creates a veth pair with one end in each namespace, with MTU, MAC and state', async () => {
    const a = await tmp.create('a');
    const b = await tmp.create('b');
    const pair = await createVethPair(
      host(),
      { name: 'nsmt-va', ns: a, mtu: 1400, up: true, mac: '02:11:22:33:44:55' },
      { name: 'nsmt-vb', ns: b, mtu: 1380, up: true },
    );
    expect(pair.a).toMatchObject({ name: 'nsmt-va', mtu: 1400, up: true, kind: 'veth', mac: '02:11:22:33:44:55' });
    expect(pair.b).toMatchObject({ name: 'nsmt-vb', mtu: 1380, up: true, kind: 'veth', carrier: true });
    expect(pair.b.mac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);

    // Each end exists only in its own namespace, never in the host's.
    expect(await getLink(Rtnl.for(a), 'nsmt-va')).toEqual(pair.a);
    expect(await getLink(Rtnl.for(a), 'nsmt-vb')).toBeUndefined();
    expect(await getLink(Rtnl.for(b), pair.b.index)).toEqual(pair.b);
    expect(await getLink(host(), 'nsmt-va')).toBeUndefined();
    expect(await getLink(host(), 'nsmt-vb')).toBeUndefined();

    await deleteLink(Rtnl.for(a), pair.a.index);
    expect(await listLinks(Rtnl.for(b))).toHaveLength(1); // deleting one end removes both
  });

  it('transactNow: one send, each answer at once and in order, a failed request failing alone', async () => {
    const a = await tmp.create();
    const rtnl = Rtnl.for(a);
    const pair = createVethPairNow(rtnl, { name: 'nsmt-na', ns: a, up: true }, { name: 'nsmt-nb', ns: a });
    expect(pair.a).toMatchObject({ name: 'nsmt-na', up: true });
    expect(pair.b).toMatchObject({ name: 'nsmt-nb', up: false });
    const answers = rtnl.transactNow([
      setLinkUpRequest(pair.b.index, true),
      addAddressRequest(pair.b.index, '10.99.0.1/32'),
      addAddressRequest(pair.b.index, '10.99.0.1/32'), // the same again: EEXIST, alone
      { ...addAddressRequest(pair.b.index, '10.99.0.2/32'), body: () => { throw new Error('bad body'); } },
      getLinkRequest(pair.b.index),
      getLinkRequest('nsmt-none'),
    ]);
    expect(answers.map((x) => (x.payloads ? 'ok' : ((x.error as SysError).code ?? (x.error as Error).message)))).toEqual([
      'ok', 'ok', 'EEXIST', 'bad body', 'ok', 'ENODEV',
    ]);
    expect(linkOf(answers[4]!)).toMatchObject({ name: 'nsmt-nb', up: true, carrier: true }); // handled in order
    expect(linkOf(answers[5]!)).toBeUndefined();
    expect(() => rtnl.batch(() => rtnl.transactNow([]))).toThrow(/inside batch/);
    expect(() => rtnl.transactNow([{ ...getLinkRequest(1), options: { slow: true } }])).toThrow(/slow/);
    expect(() => createVethPairNow(rtnl, { name: 'nsmt-na', ns: a }, { name: 'nsmt-nc', ns: a })).toThrow(
      expect.objectContaining({ code: 'EEXIST' }),
    );
    await deleteLink(rtnl, pair.a.index);
  });

  it('rejects names longer than 15 bytes with EINVAL before asking the kernel', async () => {
    const a = await tmp.create();
    const long = 'nsmt-0123456789x'; // 16 bytes
    const err = await createVethPair(host(), { name: long, ns: a }, { name: 'nsmt-ok', ns: a }).catch((e) => e);
    expect(err).toBeInstanceOf(SysError);
    expect(err).toMatchObject({ code: 'EINVAL', errno: -22, syscall: 'RTM_NEWLINK', path: long });
    expect(err.message).toBe(
      `EINVAL: invalid argument, RTM_NEWLINK '${long}': interface name must be 1..15 bytes, got 16`,
    );
    await expect(createVethPair(host(), { name: 'a/b', ns: a }, { name: 'x', ns: a })).rejects.toMatchObject({
      code: 'EINVAL',
    });
    expect(await listLinks(Rtnl.for(a))).toHaveLength(1);
  });

  it('fails with EEXIST when a name is taken, leaving nothing behind', async () => {
    const a = await tmp.create();
    const b = await tmp.create();
    await createVethPair(host(), { name: 'nsmt-d1', ns: a }, { name: 'nsmt-d2', ns: b });
    const err = await createVethPair(host(), { name: 'nsmt-d1', ns: a }, { name: 'nsmt-d3', ns: b }).catch((e) => e);
    expect(err).toBeInstanceOf(SysError);
    expect(err).toMatchObject({ code: 'EEXIST', errno: -17, syscall: 'RTM_NEWLINK' });
    expect(err.message).toMatch(/^EEXIST: file already exists, RTM_NEWLINK 'nsmt-d1\/nsmt-d3'$/);
    expect(await getLink(Rtnl.for(b), 'nsmt-d3')).toBeUndefined();
  });

  it('sets up/down, MTU and alias; renames; moves; deletes', async () => {
    const a = await tmp.create();
    const b = await tmp.create();
    const rtnlA = Rtnl.for(a);
    const { a: end } = await createVethPair(host(), { name: 'nsmt-m1', ns: a }, { name: 'nsmt-m2', ns: b });

    await setLinkUp(rtnlA, end.index, true);
    await setMtu(rtnlA, end.index, 1280);
    await setLinkAlias(rtnlA, end.index, 'nsm connection 42');
    expect(await getLink(rtnlA, end.index)).toMatchObject({ up: true, mtu: 1280, alias: 'nsm connection 42' });
    await setLinkAlias(rtnlA, end.index, '');
    expect((await getLink(rtnlA, end.index))?.alias).toBeUndefined();

    await setLinkUp(rtnlA, end.index, false);
    await renameLink(rtnlA, end.index, 'nsmt-r1');
    expect(await getLink(rtnlA, 'nsmt-m1')).toBeUndefined();
    expect(await getLink(rtnlA, 'nsmt-r1')).toMatchObject({ index: end.index, up: false });

    // Move into b under a new name (b already has nsmt-m2 at index 2).
    await moveLink(rtnlA, end.index, b, 'nsmt-r2');
    expect(await getLink(rtnlA, 'nsmt-r1')).toBeUndefined();
    const moved = await getLink(Rtnl.for(b), 'nsmt-r2');
    expect(moved).toMatchObject({ kind: 'veth' });

    await deleteLink(Rtnl.for(b), moved!.index);
    expect((await listLinks(Rtnl.for(b))).map((l) => l.name)).toEqual(['lo']);
    await expect(deleteLink(Rtnl.for(b), moved!.index)).rejects.toMatchObject({ code: 'ENODEV', syscall: 'RTM_DELLINK' });
  });

  it('deletes and moves links off the event loop (the kernel waits for RCU), in order, with errors', async () => {
    const a = await tmp.create('sa');
    const b = await tmp.create('sb');
    const n = 8;
    const pairs = [];
    for (let i = 0; i < n; i++) {
      pairs.push(await createVethPair(host(), { name: `nsmt-s${i}`, ns: a }, { name: `nsmt-t${i}`, ns: a }));
    }
    // The event loop keeps turning while the deletions and moves wait in the kernel: count its
    // turns (a 0 ms timer chain). Synchronously, ~15-20 ms each would have frozen it throughout.
    let turns = 0;
    let ticking = true;
    const tick = () => {
      turns++;
      if (ticking) setTimeout(tick, 0);
    };
    setTimeout(tick, 0);
    const t0 = performance.now();
    const ra = Rtnl.for(a);
    const done = await Promise.all(
      pairs.map((p, i) => (i % 2 ? moveLink(ra, p.a.index, b, `nsmt-m${i}`) : deleteLink(ra, p.a.index)).then(() => performance.now() - t0)),
    );
    ticking = false;
    const elapsed = performance.now() - t0;
    // the moves in order: each finished no earlier than the one queued before it (deletions
    // asked for meanwhile are coalesced into one, see the next test)
    for (let i = 3; i < n; i += 2) expect(done[i]).toBeGreaterThanOrEqual(done[i - 2]!);
    expect(turns).toBeGreaterThan(n); // the loop ran between (and during) the kernel's waits
    console.log(`[rtnl] ${n} deletes/moves in ${elapsed.toFixed(1)} ms, ${turns} event-loop turns meanwhile`);
    for (let i = 0; i < n; i++) {
      expect(await getLink(ra, `nsmt-s${i}`)).toBeUndefined();
      if (i % 2) expect(await getLink(Rtnl.for(b), `nsmt-m${i}`)).toMatchObject({ kind: 'veth' });
    }
    // an error of the slow lane is the kernel's, like any other
    await expect(deleteLink(ra, 999_999)).rejects.toMatchObject({ code: 'ENODEV', syscall: 'RTM_DELLINK' });
    // and the slow lane still works after it
    const p = await createVethPair(host(), { name: 'nsmt-s9', ns: a }, { name: 'nsmt-t9', ns: a });
    await deleteLink(ra, p.a.index);
    expect(await getLink(ra, 'nsmt-t9')).toBeUndefined();
  });

  it('coalesces deletions asked for while one is in flight into one group delete, failing per link', async () => {
    const a = await tmp.create('g');
    const b = await tmp.create('gb');
    const ra = Rtnl.for(a);
    const n = 40;
    const pairs = [];
    for (let i = 0; i < n; i++) pairs.push(createVethPairNow(ra, { name: `nsmt-g${i}`, ns: a }, { name: `nsmt-h${i}`, ns: b }));
    // A link of the namespace that nobody deletes stays, whatever group the batch used.
    const keep = createVethPairNow(ra, { name: 'nsmt-keep', ns: a }, { name: 'nsmt-keep2', ns: b });
    const sent = vi.spyOn(ra, 'request');
    const t0 = performance.now();
    const results = await Promise.allSettled([
      ...pairs.map((p) => deleteLink(ra, p.a.index)),
      deleteLink(ra, 999_999), // not there: fails alone
      deleteLink(ra, pairs[5]!.a.index), // asked twice: both succeed
    ]);
    const elapsed = performance.now() - t0;
    expect(results.slice(0, n).every((r) => r.status === 'fulfilled')).toBe(true);
    expect(results[n]).toMatchObject({ status: 'rejected', reason: { code: 'ENODEV' } });
    expect(results[n + 1]).toMatchObject({ status: 'fulfilled' });
    expect((await listLinks(ra)).map((l) => l.name).sort()).toEqual(['lo', 'nsmt-keep']);
    expect((await listLinks(Rtnl.for(b))).map((l) => l.name).sort()).toEqual(['lo', 'nsmt-keep2']);
    // One by one, 42 DELLINKs would each wait for an RCU barrier (~17 ms here). Coalesced: the
    // first alone (nothing was waiting yet), then one for the group of all the others.
    const dellinks = sent.mock.calls.filter(([type]) => type === 17).length; // RTM_DELLINK
    sent.mockRestore();
    console.log(`[rtnl] ${n} deletions at once in ${elapsed.toFixed(1)} ms, ${dellinks} DELLINK requests`);
    expect(dellinks).toBe(2);
    await deleteLink(ra, keep.a.index);
  });

  it('opens the slow lane through a handle still open when the first one was closed', async () => {
    const a = await tmp.create('sc');
    const h1 = openNetns(a.path);
    const h2 = openNetns(a.path);
    const rtnl = Rtnl.for(h1);
    expect(Rtnl.for(h2)).toBe(rtnl); // one socket per namespace, two owners
    const p = await createVethPair(host(), { name: 'nsmt-o1', ns: h1 }, { name: 'nsmt-o2', ns: h1 });
    h1.close(); // the handle that opened it
    await deleteLink(Rtnl.for(h2), p.a.index); // first slow request: its socket is opened now
    expect(await getLink(Rtnl.for(h2), 'nsmt-o2')).toBeUndefined();
    h2.close();
  });

  it('reports kernel errors for bad values', async () => {
    const a = await tmp.create();
    const { a: end } = await createVethPair(host(), { name: 'nsmt-e1', ns: a }, { name: 'nsmt-e2', ns: a });
    await expect(setMtu(Rtnl.for(a), end.index, 70000)).rejects.toMatchObject({ code: 'EINVAL', syscall: 'RTM_NEWLINK' });
    await expect(addAddress(Rtnl.for(a), 9999, '10.0.0.1/24')).rejects.toMatchObject({ code: 'ENODEV' });
  });

  it('creates a vxlan in the underlay namespace and places it in another', async () => {
    const under = await tmp.create('u');
    const over = await tmp.create('o');
    const rtnlU = Rtnl.for(under);
    const pair = await createVethPair(rtnlU, { name: 'nsmt-u1', ns: under, up: true }, { name: 'nsmt-u2', ns: under, up: true });
    await addAddress(rtnlU, pair.a.index, '10.99.0.1/24');
    const vx = await createVxlan(rtnlU, {
      name: 'nsmt-vx',
      vni: 4242,
      local: '10.99.0.1',
      remote: '10.99.0.2',
      dev: pair.a.index,
      mtu: 1400,
      ns: over,
      up: true,
    });
    expect(vx).toMatchObject({ name: 'nsmt-vx', kind: 'vxlan', mtu: 1400, up: true });
    expect(await getLink(rtnlU, 'nsmt-vx')).toBeUndefined();
    await expect(createVxlan(rtnlU, { name: 'nsmt-vx2', vni: 1 << 24 })).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(
      createVxlan(rtnlU, { name: 'nsmt-vx3', vni: 1, local: '10.99.0.1', remote: 'fd00::1' }),
    ).rejects.toMatchObject({ code: 'EINVAL' });
  });
});
