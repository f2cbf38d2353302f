// SPDX-License-Identifier: Apache-2.0
// Root only: interface counters read as listLinkStats (RTM_GETSTATS, names kept) and
// getLinkStats (by name) do, against a full RTM_GETLINK dump's IFLA_STATS64; links made,
// deleted and renamed between reads.
import { FlagsGet, rt } from 'netlink';
import { afterAll, describe, expect, it } from 'vitest';
import { Rtnl, createVethPair, deleteLink, getLink, renameLink, getLinkStats, icmpEcho, listLinkStats, parseLinkStats, readLinkStats, setLinkUp, type LinkStats } from '../../../src/sys';
import { tempNetns } from '../../helpers/netns';

const root = process.getuid?.() === 0;

/** Every link's counters from a full RTM_GETLINK dump (IFLA_STATS64), by name. */
async function fullDump(rtnl: Rtnl): Promise<Map<string, LinkStats>> {
  const replies = await rtnl.request(rt.MessageType.GETLINK, (out) => out.emit(Buffer.alloc(16)), { flags: FlagsGet.DUMP });
  return new Map(replies.map((p) => parseLinkStats(p)).map((s) => [s.name, s]));
}

describe.skipIf(!root)('link counters', () => {
  const tmp = tempNetns('lstats');
  afterAll(async () => {
    await tmp.cleanup();
    Rtnl.closeAll();
  });

  it('reads the same counters as a full dump, by name and for every link', async () => {
    const a = await tmp.create('a');
    const b = await tmp.create('b');
    const ra = Rtnl.for(a);
    // The veth stays down (an up link sends IPv6 packets of its own, so its counters would
    // move between two reads); lo carries the traffic counted.
    const pair = await createVethPair(ra, { name: 'nsmt-sa', ns: a }, { name: 'nsmt-sb', ns: b });
    await setLinkUp(ra, 'lo', true);
    expect(await icmpEcho(a.name, '127.0.0.1', '127.0.0.1', { timeoutMs: 2_000, count: 2 })).toBeGreaterThan(0);

    const full = await fullDump(ra);
    const all = await listLinkStats(ra);
    expect(all).toEqual(full);
    expect(all.get('nsmt-sa')).toMatchObject({ index: pair.a.index });
    expect(all.get('lo')!.rxPackets).toBeGreaterThan(0);
    expect(all.get('lo')!.txBytes).toBeGreaterThan(0);
    const named = await getLinkStats(ra, ['nsmt-sa', 'lo', 'nsmt-none']);
    expect([...named.keys()].sort()).toEqual(['lo', 'nsmt-sa']);
    expect(named.get('nsmt-sa')).toEqual(full.get('nsmt-sa'));
    expect(named.get('lo')).toEqual(full.get('lo'));
    expect((await readLinkStats(ra, ['nsmt-sa'])).get('nsmt-sa')).toEqual(full.get('nsmt-sa'));
  });

  it('names a link made or renamed after an earlier read, and leaves out a deleted one', async () => {
    const a = await tmp.create('c');
    const b = await tmp.create('d');
    const ra = Rtnl.for(a);
    const first = await createVethPair(ra, { name: 'nsmt-s1', ns: a }, { name: 'nsmt-s1p', ns: b });
    expect([...(await listLinkStats(ra)).keys()].sort()).toEqual(['lo', 'nsmt-s1']);

    const second = await createVethPair(ra, { name: 'nsmt-s2', ns: a }, { name: 'nsmt-s2p', ns: b });
    await deleteLink(ra, first.a.index);
    expect(await getLink(ra, 'nsmt-s1')).toBeUndefined();
    const after = await listLinkStats(ra);
    expect([...after.keys()].sort()).toEqual(['lo', 'nsmt-s2']);
    expect(after.get('nsmt-s2')).toMatchObject({ index: second.a.index, name: 'nsmt-s2' });
    expect(after).toEqual(await fullDump(ra));

    // A rename keeps the ifindex: the link is found under its new name at once.
    await renameLink(ra, second.a.index, 'nsmt-s3');
    expect([...(await listLinkStats(ra)).keys()].sort()).toEqual(['lo', 'nsmt-s3']);
  });
});
