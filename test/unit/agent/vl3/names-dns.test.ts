/**
 * vL3 member names (names-dns.ts, and what server.ts feeds it): records named after the
 * podName label, A/AAAA/PTR answers, forwarding to peers only with RD (and with RD cleared),
 * the DNS config clients get, and bad input.
 */
import * as packet from 'dns-packet';
import { describe, expect, it } from 'vitest';
import type { Connection, NetworkServiceRequest } from '../../../../src/api';
import { Ctx } from '../../../../src/core/ctx';
import { chainServer, type NetworkServiceServer } from '../../../../src/core/networkservice';
import { addressOfReverse, answerMemberQuery, memberLabel, MemberNames, reverseName } from '../../../../src/agent/endpoints/vl3/names-dns';
import { Vl3Pool } from '../../../../src/agent/endpoints/vl3/pool';
import { vl3Server } from '../../../../src/agent/endpoints/vl3/server';
import { memberName } from '../../../../src/agent/held';

const query = (name: string, type: string, rd = true, id = 7) =>
  packet.encode({ id, type: 'query', flags: rd ? packet.RECURSION_DESIRED : 0, questions: [{ name, type: type as 'A', class: 'IN' }] });
const rcode = (b: Buffer) => b[3]! & 0x0f;

function names() {
  const n = new MemberNames('vl3-app');
  n.set('c1', 'web', ['172.16.1.1/32', 'fd00::1/128']);
  return n;
}

describe('vL3 member names', () => {
  it('makes DNS labels of member names and reverse names of addresses', () => {
    expect(memberLabel('Web_App.service')).toBe('web-app-service');
    expect(memberLabel('--')).toBeUndefined();
    expect(memberLabel('x'.repeat(80))).toHaveLength(63);
    expect(reverseName('172.16.1.2')).toBe('2.1.16.172.in-addr.arpa');
    expect(reverseName('fd00::1')).toBe(`1.${'0.'.repeat(29)}d.f.ip6.arpa`);
    expect(memberName('app')).toBe('app');
    expect(memberName('/run/netns/app')).toBe('app');
    expect(memberName('/proc/7/ns/net')).toBeUndefined();
    expect(memberName('host')).toMatch(/./);
  });

  it('answers A, AAAA and PTR for members, authoritative, TTL 0', async () => {
    const n = names();
    const a = packet.decode((await answerMemberQuery(n, query('WEB.vl3-app', 'A')))!);
    expect(a.id).toBe(7);
    expect(a.flags! & packet.AUTHORITATIVE_ANSWER).toBeTruthy();
    expect(a.answers).toEqual([expect.objectContaining({ name: 'WEB.vl3-app', type: 'A', data: '172.16.1.1', ttl: 0 })]);
    const aaaa = packet.decode((await answerMemberQuery(n, query('web.vl3-app.', 'AAAA')))!);
    expect(aaaa.answers?.map((r) => (r as { data: unknown }).data)).toEqual(['fd00::1']);
    const ptr = packet.decode((await answerMemberQuery(n, query('1.1.16.172.in-addr.arpa', 'PTR')))!);
    expect(ptr.answers?.map((r) => (r as { data: unknown }).data)).toEqual(['web.vl3-app']);
    const apex = await answerMemberQuery(n, query('vl3-app', 'A'));
    expect(rcode(apex!)).toBe(0);
  });

  it('refuses names outside the zone; NXDOMAIN for unknown ones; drops the record with the connection', async () => {
    const n = names();
    expect(rcode((await answerMemberQuery(n, query('example.com', 'A')))!)).toBe(5);
    expect(rcode((await answerMemberQuery(n, query('db.vl3-app', 'A')))!)).toBe(3);
    // a connection asking again under another name and address: the old records go
    n.set('c2', 'web', ['172.16.1.9']);
    n.set('c1', 'api', ['172.16.1.2']);
    expect(n.list()).toEqual(new Map([['web.vl3-app', ['172.16.1.9']], ['api.vl3-app', ['172.16.1.2']]]));
    expect(rcode((await answerMemberQuery(n, query('1.1.16.172.in-addr.arpa', 'PTR')))!)).toBe(3);
    n.delete('c2');
    expect(rcode((await answerMemberQuery(n, query('web.vl3-app', 'A')))!)).toBe(3);
    n.delete('c1');
    expect(rcode((await answerMemberQuery(n, query('1.1.16.172.in-addr.arpa', 'PTR')))!)).toBe(3);
  });

  it('asks the peers with RD cleared, only for queries with RD, and passes their answer on', async () => {
    const n = names();
    const asked: Buffer[] = [];
    const peer = new MemberNames('vl3-app');
    peer.set('p1', 'db', ['172.16.2.1']);
    const peers = async (q: Buffer) => {
      asked.push(q);
      return answerMemberQuery(peer, q, async () => {
        throw new Error('a forwarded query must not be forwarded again');
      });
    };
    const got = packet.decode((await answerMemberQuery(n, query('db.vl3-app', 'A', true, 99), peers))!);
    expect(got.id).toBe(99);
    expect(got.answers?.map((r) => (r as { data: unknown }).data)).toEqual(['172.16.2.1']);
    expect(asked).toHaveLength(1);
    expect(asked[0]![2]! & 0x01).toBe(0); // RD cleared
    // without RD: local records only
    expect(rcode((await answerMemberQuery(n, query('db.vl3-app', 'A', false), peers))!)).toBe(3);
    expect(asked).toHaveLength(1);
    // peers that do not know it: NXDOMAIN
    expect(rcode((await answerMemberQuery(n, query('nobody.vl3-app', 'A'), peers))!)).toBe(3);
  });

  it('answers reverse names of the vL3 network only; truncates what does not fit over UDP', async () => {
    expect(addressOfReverse(reverseName('172.16.1.2')!)).toEqual({ family: 4, value: 0xac100102n });
    expect(addressOfReverse(reverseName('fd00::1')!)).toEqual({ family: 6, value: (0xfd00n << 112n) | 1n });
    expect(addressOfReverse('1.16.172.in-addr.arpa')).toBeUndefined();
    expect(addressOfReverse('1.1.16.999.in-addr.arpa')).toBeUndefined();
    const n = new MemberNames('vl3-app', () => ['172.16.1.0/16']);
    n.set('c1', 'web', ['172.16.1.1']);
    let asked = 0;
    const peers = async () => {
      asked++;
      return undefined;
    };
    expect(rcode((await answerMemberQuery(n, query('1.1.16.172.in-addr.arpa', 'PTR'), peers))!)).toBe(0);
    expect(rcode((await answerMemberQuery(n, query('9.9.16.172.in-addr.arpa', 'PTR'), peers))!)).toBe(3);
    expect(asked).toBe(1);
    expect(rcode((await answerMemberQuery(n, query('8.8.8.8.in-addr.arpa', 'PTR'), peers))!)).toBe(5);
    expect(asked).toBe(1);
    for (let i = 2; i < 60; i++) n.set(`c${i}`, 'many', [`172.16.1.${i}`]);
    const full = (await answerMemberQuery(n, query('many.vl3-app', 'A')))!;
    expect(packet.decode(full).answers).toHaveLength(58);
    const cut = (await answerMemberQuery(n, query('many.vl3-app', 'A'), undefined, 512))!;
    expect(cut.length).toBeLessThanOrEqual(512);
    expect(cut[2]! & 0x02).toBeTruthy(); // TC
  });

  it('treats malformed input as the resolver does', async () => {
    const n = names();
    expect(await answerMemberQuery(n, Buffer.alloc(5))).toBeUndefined();
    const resp = query('web.vl3-app', 'A');
    resp[2] = resp[2]! | 0x80;
    expect(await answerMemberQuery(n, resp)).toBeUndefined();
    const cut = query('web.vl3-app', 'A').subarray(0, 16);
    expect(rcode((await answerMemberQuery(n, cut))!)).toBe(1);
    const op = query('web.vl3-app', 'A');
    op[2] = op[2]! | 0x10; // opcode 2
    expect(rcode((await answerMemberQuery(n, op))!)).toBe(4);
    const loop = Buffer.concat([query('a', 'A').subarray(0, 12), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])]);
    expect(rcode((await answerMemberQuery(n, loop))!)).toBe(1);
  });
});

describe('vl3 server: DNS', () => {
  const tail: NetworkServiceServer = { request: async (_ctx, req) => req.connection ?? {}, close: async () => {} };
  function setup() {
    const pool = new Vl3Pool();
    pool.reset('172.16.1.0/24');
    const n = new MemberNames('vl3-app');
    const server = vl3Server([pool], { names: n, dnsConfig: () => ({ dns_server_ips: [pool.selfIp!], search_domains: ['vl3-app'] }) });
    const chain = chainServer(server, tail);
    const request = (conn: Connection) => chain.request(Ctx.background(), { connection: conn } as NetworkServiceRequest);
    return { n, server, chain, request };
  }

  it('names a client after its podName label, gives it the DNS config once, forgets it on close', async () => {
    const { n, chain, request } = setup();
    const out = await request({ id: 'c1', labels: { podName: 'web' } });
    const addr = out.context!.ip_context!.src_ip_addrs![0]!.split('/')[0]!;
    expect(n.list()).toEqual(new Map([['web.vl3-app', [addr]]]));
    expect(out.context!.dns_context!.configs).toEqual([{ dns_server_ips: ['172.16.1.0'], search_domains: ['vl3-app'] }]);
    // a refresh carrying it back, and one carrying a stale config for the service: one config
    const again = await request({ ...out, context: { ...out.context, dns_context: { configs: [{ dns_server_ips: ['172.16.9.0'], search_domains: ['vl3-app'] }, { dns_server_ips: ['10.0.0.53'], search_domains: ['other'] }] } } });
    expect(again.context!.dns_context!.configs).toEqual([
      { dns_server_ips: ['10.0.0.53'], search_domains: ['other'] },
      { dns_server_ips: ['172.16.1.0'], search_domains: ['vl3-app'] },
    ]);
    await chain.close(Ctx.background(), again);
    expect(n.list().size).toBe(0);
  });

  it('gives a peer endpoint no name and no DNS config, and keeps its address for forwarding', async () => {
    const { n, server, chain, request } = setup();
    const out = await request({ id: 'p', labels: { podName: 'nsm-vl3-x' }, context: { ip_context: { src_ip_addrs: ['172.16.2.0/32'] } } });
    expect(n.list().size).toBe(0);
    expect(out.context!.dns_context).toBeUndefined();
    expect(server.peerAddresses()).toEqual(['172.16.2.0']);
    await chain.close(Ctx.background(), out);
    expect(server.peerAddresses()).toEqual([]);
  });
});
