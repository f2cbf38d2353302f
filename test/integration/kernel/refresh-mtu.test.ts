/**
 * Root only: the KERNEL mechanism server keeps a local vWire on refresh and sets the answer's
 * MTU on both ends when it changed (a vL3 endpoint lowered it); the interfaces stay the same.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Connection } from '../../../src/api';
import { Ctx } from '../../../src/core/ctx';
import { chainServer, NetworkServiceServer } from '../../../src/core/networkservice';
import { kernelMechanism } from '../../../src/mechanisms/kernel/params';
import { kernelServer } from '../../../src/mechanisms/kernel/server';
import { DOWNSTREAM } from '../../../src/networkservice/connect';
import { Rtnl, type Netns } from '../../../src/sys';
import { tempNetns } from '../../helpers/netns';

const root = process.getuid?.() === 0;

function link(ns: string, ifname: string): { ifindex: number; mtu: number } {
  return JSON.parse(execFileSync('ip', ['-n', ns, '-j', 'link', 'show', 'dev', ifname], { encoding: 'utf8' }))[0];
}

describe.skipIf(!root)('kernelServer: MTU on refresh', () => {
  const tmp = tempNetns('kmtu');
  let client: Netns & { name: string };
  let endpoint: Netns & { name: string };

  beforeAll(async () => {
    client = await tmp.create('c');
    endpoint = await tmp.create('e');
  });
  afterAll(async () => {
    await tmp.cleanup();
    Rtnl.closeAll();
  });

  it('sets a changed answer MTU on both ends of the existing vWire', async () => {
    let mtu = 1440;
    /** Stands in for connect and a hosted endpoint: answers with the endpoint side and `mtu`. */
    const endpointSide: NetworkServiceServer = {
      async request(ctx, req) {
        const out: Connection = { ...req.connection, context: { ...req.connection?.context, MTU: mtu } };
        const slot = ctx.get(DOWNSTREAM)!;
        slot.conn = { ...out, mechanism: kernelMechanism({ netns: endpoint.path, ifname: 'nsmt-ep' }) };
        slot.local = true;
        return out;
      },
      close: async () => {},
    };
    const chain = chainServer(kernelServer(), endpointSide);
    const conn: Connection = { id: 'c1', mechanism: kernelMechanism({ netns: client.path, ifname: 'nsm-1' }) };
    const out = await chain.request(Ctx.background(), { connection: conn });
    const first = { c: link(client.name, 'nsm-1'), e: link(endpoint.name, 'nsmt-ep') };
    expect([first.c.mtu, first.e.mtu]).toEqual([1440, 1440]);

    mtu = 1340;
    await chain.request(Ctx.background(), { connection: out });
    const c = link(client.name, 'nsm-1');
    const e = link(endpoint.name, 'nsmt-ep');
    expect([c.mtu, e.mtu]).toEqual([1340, 1340]);
    expect([c.ifindex, e.ifindex]).toEqual([first.c.ifindex, first.e.ifindex]);

    // The same MTU again: nothing to set (a change behind its back stays as it is).
    execFileSync('ip', ['-n', client.name, 'link', 'set', 'nsm-1', 'mtu', '1300']);
    await chain.request(Ctx.background(), { connection: out });
    expect(link(client.name, 'nsm-1').mtu).toBe(1300);

    await chain.close(Ctx.background(), out);
    expect(() => link(client.name, 'nsm-1')).toThrow();
  });
});
