import { describe, it, expect } from 'vitest';
import type { Connection, NetworkServiceRequest } from '../../../src/api';
import { chainClient, chainServer, NetworkServiceClient, NetworkServiceServer } from '../../../src/core/networkservice';
import { Ctx } from '../../../src/core/ctx';
import { AgentError } from '../../../src/core/errors';
import { tunnelClient } from '../../../src/mechanisms/tunnel/client';
import { tunnelServer } from '../../../src/mechanisms/tunnel/server';
import type { TunnelDataplane } from '../../../src/mechanisms/tunnel/dataplane';
import { LOCAL_TARGET, paramIp, paramPort } from '../../../src/mechanisms/tunnel/params';
import { DOWNSTREAM } from '../../../src/networkservice/connect';
import { kernelMechanism } from '../../../src/mechanisms/kernel/params';
import { randomVni, vniFits, wantsEven, parseVni } from '../../../src/mechanisms/vxlan/vni';

const underlay = { ip: '10.0.0.1', family: 4 as const, mtu: 1500 };

/** A dataplane that records what it is asked to do. */
function fakeDataplane(opts: { failCreate?: boolean } = {}) {
  let next = 1;
  const log: string[] = [];
  const live = new Set<number>();
  const dp: TunnelDataplane<{ n: number }, { ip: string; port: number }, { n: number; peer: string; mtu?: number }> = {
    type: 'FAKE',
    payload: 'IP',
    overhead: { v4: 60, v6: 80 },
    async allocate() {
      const n = next++;
      live.add(n);
      log.push(`allocate ${n}`);
      return { n };
    },
    release(l) {
      live.delete(l.n);
      log.push(`release ${l.n}`);
    },
    advertise: (l, end) => ({ [`${end}_ip`]: underlay.ip, [`${end}_port`]: String(50000 + l.n) }),
    peerOf: (p, end) => ({ ip: paramIp(p, `${end}_ip`), port: paramPort(p, `${end}_port`) }),
    async create({ local, peer, target, mtu }) {
      if (opts.failCreate) throw new AgentError('DATAPLANE', 'boom');
      log.push(`create ${local.n} ${target.ifname} -> ${peer.ip}:${peer.port}`);
      return { n: local.n, peer: `${peer.ip}:${peer.port}`, mtu };
    },
    async update(d, _l, peer, mtu) {
      const p = `${peer.ip}:${peer.port}`;
      if (p !== d.peer) log.push(`update ${d.n} -> ${p}`);
      d.peer = p;
      if (mtu !== undefined && mtu !== d.mtu) log.push(`mtu ${d.n} ${d.mtu} -> ${mtu}`);
      d.mtu = mtu ?? d.mtu;
    },
    async remove(d) {
      log.push(`remove ${d.n}`);
    },
    describe: (d) => ({ n: d.n }),
  };
  return { dp, log, live };
}

/** The far side: answers with the offered FAKE preference and dst parameters. */
function farSide(answer: (m: Record<string, string>) => Record<string, string>): NetworkServiceClient & { closes: Connection[] } {
  const closes: Connection[] = [];
  return {
    closes,
    async request(_ctx, req: NetworkServiceRequest) {
      const conn = structuredClone(req.connection ?? {});
      const mech = conn.mechanism ?? req.mechanism_preferences?.find((m) => m.type === 'FAKE');
      return { ...conn, mechanism: { ...mech, parameters: answer(mech?.parameters ?? {}) } };
    },
    async close(_ctx, conn) {
      closes.push(conn);
    },
  };
}

const ctx = () => Ctx.background().with(LOCAL_TARGET, { netns: '/proc/self/ns/net', ifname: 'nsm-1' });
const req = (id = 'c1'): NetworkServiceRequest => ({ connection: { id, payload: 'IP', network_service: 's' }, mechanism_preferences: [] });

describe('tunnel client', () => {
  it('offers its src parameters and MTU, makes the local end from the answer, keeps it across a refresh', async () => {
    const { dp, log, live } = fakeDataplane();
    const tc = tunnelClient(dp, { underlay });
    const far = farSide((m) => ({ ...m, dst_ip: '10.0.0.2', dst_port: '51820' }));
    const chain = chainClient(tc, far);
    const out = await chain.request(ctx(), req());
    expect(out.mechanism?.parameters).toMatchObject({ src_ip: '10.0.0.1', src_port: '50001', MTU: '1440', dst_ip: '10.0.0.2' });
    expect(log).toEqual(['allocate 1', 'create 1 nsm-1 -> 10.0.0.2:51820']);
    // refresh: the connection names the mechanism; same local values, no new device
    await chain.request(ctx(), { connection: out, mechanism_preferences: [] });
    expect(log).toHaveLength(2);
    // the peer moved: the device follows
    const far2 = chainClient(tc, farSide((m) => ({ ...m, dst_port: '51999' })));
    await far2.request(ctx(), { connection: out, mechanism_preferences: [] });
    expect(log[2]).toBe('update 1 -> 10.0.0.2:51999');
    expect(tc.describe('c1')).toEqual({ n: 1 });
    await chain.close(ctx(), out);
    expect(log.slice(3)).toEqual(['remove 1', 'release 1']);
    expect(live.size).toBe(0);
  });

  it('a refresh whose answer lowers the context MTU sets it on the device', async () => {
    const { dp, log } = fakeDataplane();
    const tc = tunnelClient(dp, { underlay });
    const out = await chainClient(tc, farSide((m) => ({ ...m, dst_ip: '10.0.0.2', dst_port: '51820' }))).request(ctx(), req());
    const lowering: NetworkServiceClient = {
      request: async (_c, r) => ({ ...structuredClone(r.connection ?? {}), context: { MTU: 1340 } }),
      close: async () => {},
    };
    await chainClient(tc, lowering).request(ctx(), { connection: out, mechanism_preferences: [] });
    expect(log.slice(2)).toEqual(['mtu 1 1440 -> 1340']);
  });

  it('a malformed answer closes the far side and leaves nothing', async () => {
    const { dp, log, live } = fakeDataplane();
    const far = farSide((m) => ({ ...m, dst_ip: 'not-an-ip', dst_port: '51820' }));
    const chain = chainClient(tunnelClient(dp, { underlay }), far);
    await expect(chain.request(ctx(), req())).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/dst_ip/) });
    expect(far.closes).toHaveLength(1);
    expect(log).toEqual(['allocate 1', 'release 1']);
    expect(live.size).toBe(0);
  });

  it('a failing device closes the far side and releases the values', async () => {
    const { dp, log, live } = fakeDataplane({ failCreate: true });
    const far = farSide((m) => ({ ...m, dst_ip: '10.0.0.2', dst_port: '51820' }));
    const chain = chainClient(tunnelClient(dp, { underlay }), far);
    await expect(chain.request(ctx(), req())).rejects.toMatchObject({ code: 'DATAPLANE' });
    expect(far.closes).toHaveLength(1);
    expect(log).toEqual(['allocate 1', 'release 1']);
    expect(live.size).toBe(0);
  });

  it('leaves other payloads alone and releases when the far side picks another mechanism', async () => {
    const { dp, log } = fakeDataplane();
    const chain = chainClient(tunnelClient(dp, { underlay }), farSide((m) => m));
    const eth = await chain.request(ctx(), { connection: { id: 'e', payload: 'ETHERNET' }, mechanism_preferences: [] });
    expect(eth.mechanism?.type).toBeUndefined();
    expect(log).toEqual([]);
    const other: NetworkServiceClient = { request: async (_c, r) => ({ ...r.connection, mechanism: { type: 'OTHER' } }), close: async () => {} };
    await chainClient(tunnelClient(dp, { underlay }), other).request(ctx(), req());
    expect(log).toEqual(['allocate 1', 'release 1']);
  });
});

describe('tunnel server', () => {
  /** The endpoint side as connect leaves it in the DOWNSTREAM slot. */
  const endpoint = (local: boolean): NetworkServiceServer & { closes: number } => {
    const e = {
      closes: 0,
      async request(c: Ctx, r: NetworkServiceRequest) {
        const slot = c.get(DOWNSTREAM);
        const conn = structuredClone(r.connection ?? {});
        if (slot) {
          slot.conn = { ...conn, mechanism: kernelMechanism({ netns: '/proc/self/ns/net', ifname: 'ep-1' }) };
          slot.local = local;
        }
        return { ...conn, context: { ...(conn.context ?? {}), ip_context: { src_ip_addrs: ['172.16.0.1/32'], dst_ip_addrs: ['172.16.0.0/32'] } } };
      },
      async close() {
        e.closes++;
      },
    };
    return e;
  };
  const serverReq = (params: Record<string, string>, mtu?: number): NetworkServiceRequest => ({
    connection: { id: 's1', mechanism: { cls: 'REMOTE', type: 'FAKE', parameters: params }, context: mtu ? { MTU: mtu } : {} },
    mechanism_preferences: [],
  });

  it('answers with dst parameters, MTU = min(offered, own), lowers the context MTU, makes the endpoint end', async () => {
    const { dp, log } = fakeDataplane();
    const chain = chainServer(tunnelServer(dp, { underlay }), endpoint(true));
    const out = await chain.request(Ctx.background(), serverReq({ src_ip: '10.0.0.9', src_port: '51820', MTU: '1400' }, 9000));
    expect(out.mechanism?.parameters).toMatchObject({ dst_ip: '10.0.0.1', dst_port: '50001', MTU: '1400', src_ip: '10.0.0.9' });
    expect(out.context?.MTU).toBe(1400);
    expect(log).toEqual(['allocate 1', 'create 1 ep-1 -> 10.0.0.9:51820']);
    await chain.request(Ctx.background(), { connection: out, mechanism_preferences: [] });
    expect(log).toHaveLength(2);
    await chain.close(Ctx.background(), out);
    expect(log.slice(2)).toEqual(['remove 1', 'release 1']);
  });

  it('a refresh whose answer lowers the context MTU (a vL3 endpoint) sets it on the device', async () => {
    const { dp, log } = fakeDataplane();
    let mtu: number | undefined;
    const ep = endpoint(true);
    const lowering: NetworkServiceServer = {
      request: async (c, r) => {
        const out = await ep.request(c, r);
        return mtu ? { ...out, context: { ...out.context, MTU: mtu } } : out;
      },
      close: async () => {},
    };
    const chain = chainServer(tunnelServer(dp, { underlay }), lowering);
    const out = await chain.request(Ctx.background(), serverReq({ src_ip: '10.0.0.9', src_port: '51820', MTU: '1440' }));
    mtu = 1340;
    await chain.request(Ctx.background(), { connection: out, mechanism_preferences: [] });
    expect(log).toEqual(['allocate 1', 'create 1 ep-1 -> 10.0.0.9:51820', 'mtu 1 1440 -> 1340']);
  });

  it('answers with the values the end has once made: one the dataplane replaced while making it', async () => {
    const { dp, log } = fakeDataplane();
    const create = dp.create.bind(dp);
    dp.create = async (args) => {
      args.local.n = 7; // e.g. a WireGuard listen port found taken, replaced by another
      return create(args);
    };
    const chain = chainServer(tunnelServer(dp, { underlay }), endpoint(true));
    const out = await chain.request(Ctx.background(), serverReq({ src_ip: '10.0.0.9', src_port: '51820' }));
    expect(out.mechanism?.parameters).toMatchObject({ dst_ip: '10.0.0.1', dst_port: '50007' });
    expect(log).toEqual(['allocate 1', 'create 7 ep-1 -> 10.0.0.9:51820']);
  });

  it('refuses bad src parameters before allocating anything', async () => {
    const { dp, log } = fakeDataplane();
    const ep = endpoint(true);
    const chain = chainServer(tunnelServer(dp, { underlay }), ep);
    await expect(chain.request(Ctx.background(), serverReq({ src_ip: '10.0.0.9', src_port: '70000' }))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/src_port/) });
    await expect(chain.request(Ctx.background(), serverReq({ src_ip: '10.0.0.9', src_port: '1', MTU: 'big' }))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/MTU/) });
    expect(log).toEqual([]);
  });

  it('does not carry a tunnel on to a non-local hop: UNSUPPORTED_MECHANISM, endpoint closed, values released', async () => {
    const { dp, log, live } = fakeDataplane();
    const ep = endpoint(false);
    const chain = chainServer(tunnelServer(dp, { underlay }), ep);
    await expect(chain.request(Ctx.background(), serverReq({ src_ip: '10.0.0.9', src_port: '51820' }))).rejects.toMatchObject({ code: 'UNSUPPORTED_MECHANISM' });
    expect(ep.closes).toBe(1);
    expect(log).toEqual(['allocate 1', 'release 1']);
    expect(live.size).toBe(0);
  });
});

describe('VXLAN VNI rule', () => {
  it('is even when src <= dst and odd otherwise, within 24 bits', () => {
    expect(wantsEven('10.0.0.1', '10.0.0.2')).toBe(true);
    expect(wantsEven('10.0.0.2', '10.0.0.1')).toBe(false);
    expect(wantsEven('10.0.0.2', '10.0.0.2')).toBe(true);
    expect(wantsEven('10.0.0.2', 'fd00::1')).toBe(true); // compared as ::ffff:10.0.0.2, which sorts first
    for (let i = 0; i < 200; i++) {
      const even = randomVni('10.0.0.1', '10.0.0.2');
      const odd = randomVni('10.0.0.2', '10.0.0.1');
      expect(even % 2).toBe(0);
      expect(odd % 2).toBe(1);
      expect(even).toBeGreaterThan(0);
      expect(odd).toBeLessThanOrEqual(0xffffff);
      expect(vniFits(even, '10.0.0.1', '10.0.0.2')).toBe(true);
    }
    expect(randomVni('10.0.0.1', '10.0.0.2', () => 0)).not.toBe(0);
  });

  it('parses vni parameters strictly', () => {
    expect(parseVni('1')).toBe(1);
    expect(parseVni('16777215')).toBe(16777215);
    for (const bad of ['0', '16777216', '-1', '1e3', '', undefined, ' 5']) {
      expect(() => parseVni(bad)).toThrow(/vni must be 1\.\.16777215/);
    }
  });
});
