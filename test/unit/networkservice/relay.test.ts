import { describe, expect, it } from 'vitest';
import type { Connection, NetworkServiceEndpoint } from '../../../src/api';
import { Ctx } from '../../../src/core/ctx';
import { AgentError } from '../../../src/core/errors';
import { chainClient, chainServer } from '../../../src/core/networkservice';
import type { NseRegistry } from '../../../src/core/registry';
import { clientURL } from '../../../src/networkservice/clienturl';
import { interdomainBypassServer } from '../../../src/networkservice/interdomainbypass';
import { monitorServer } from '../../../src/networkservice/monitor';
import { relayingServer, relayServer, RelayTable } from '../../../src/networkservice/relay';
import { PEER, type PeerIdentity } from '../../../src/spire/peer';
import { clientRecorder, recorder } from './helpers';

const PEER_ID = { id: 'spiffe://example.org/host-a', trustDomain: 'example.org' } as PeerIdentity;
const remote = () => Ctx.background().with(PEER, PEER_ID);
const SELF = 'tcp://10.0.0.2:5001';
const INNER = 'tcp://192.168.78.2:5001';

function registry(entries: NetworkServiceEndpoint[], fail?: AgentError): NseRegistry & { finds: number } {
  const reg = {
    finds: 0,
    register: async (_ctx: Ctx, nse: NetworkServiceEndpoint) => nse,
    unregister: async () => {},
    async *find(_ctx: Ctx, q: { network_service_endpoint?: { name?: string } | null }) {
      reg.finds++;
      if (fail) throw fail;
      for (const e of entries) if (e.name === q.network_service_endpoint?.name) yield { network_service_endpoint: e };
    },
  };
  return reg as unknown as NseRegistry & { finds: number };
}

/** The relay as the agent assembles it, with a client that records the URL it would dial. */
function setup(opts: { entries?: NetworkServiceEndpoint[]; fail?: AgentError; hosted?: string[]; inner?: (conn: Connection) => Connection } = {}) {
  const table = new RelayTable();
  const own = recorder();
  const inner = clientRecorder(opts.inner);
  // the URL each relayed call (Request or Close) would dial
  const urls = { get all() { return inner.ctxs.map((c) => clientURL(c)?.href ?? ''); } };
  const ident = { name: 'host-b', domain: 'domain-b.test' };
  const relay = chainServer(monitorServer(table.hub), interdomainBypassServer({ ownDomain: ident.domain }), relayServer({ ...ident, table, client: chainClient(inner) }));
  const reg = registry(opts.entries ?? [{ name: 'icmp-c', url: INNER }, { name: 'icmp-b', url: SELF }], opts.fail);
  const hosted = new Set(opts.hosted ?? []);
  const server = relayingServer({ ...ident, hosts: (n) => hosted.has(n), nse: reg, selfUrl: () => SELF, table, relay, own });
  return { server, own, inner, urls, table, reg };
}

const conn = (endpoint: string, service = 'icmp@domain-b.test'): Connection => ({
  id: 'p1',
  network_service: service,
  network_service_endpoint_name: endpoint,
  path: { index: 0, path_segments: [{ name: 'host-b', id: 'p1' }] },
});

describe('relay (nsmgr-proxy role)', () => {
  it('relays a Request for another agent\'s endpoint to its registered URL, names stripped there and restored here', async () => {
    const s = setup();
    const answer = await s.server.request(remote(), { connection: conn('icmp-c@domain-b.test') });
    expect(s.urls.all).toEqual([INNER]);
    expect(s.inner.requests[0]!.connection).toMatchObject({ network_service: 'icmp', network_service_endpoint_name: 'icmp-c' });
    expect(answer).toMatchObject({ network_service: 'icmp@domain-b.test', network_service_endpoint_name: 'icmp-c@domain-b.test' });
    expect(s.own.requests).toHaveLength(0);
    expect(s.table.urlOf('p1')).toBe(INNER);
    expect(s.table.hub.get('p1')).toBeDefined();
    // Close goes to the same URL and forgets the connection
    await s.server.close(remote(), answer);
    expect(s.urls.all).toEqual([INNER, INNER]);
    expect(s.inner.closes[0]).toMatchObject({ network_service_endpoint_name: 'icmp-c' });
    expect(s.table.urlOf('p1')).toBeUndefined();
    expect(s.table.hub.get('p1')).toBeUndefined();
    s.table.close();
  });

  it('serves in its own chain: local callers, hosted endpoints, endpoints registered at its own URL, no endpoint named', async () => {
    const s = setup({ hosted: ['icmp-h'] });
    await s.server.request(Ctx.background(), { connection: conn('icmp-c@domain-b.test') });
    await s.server.request(remote(), { connection: conn('icmp-h@domain-b.test') });
    await s.server.request(remote(), { connection: conn('icmp-b@domain-b.test') });
    await s.server.request(remote(), { connection: conn('') });
    expect(s.own.requests).toHaveLength(4);
    expect(s.inner.requests).toHaveLength(0);
  });

  it('an endpoint the registry does not have: NOT_FOUND naming the relay and the endpoint', async () => {
    const s = setup();
    const err = await s.server.request(remote(), { connection: conn('ghost@domain-b.test') }).catch((e) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect(err.code).toBe('NOT_FOUND');
    expect(err.message).toBe('nsmgr-proxy host-b of domain-b.test: endpoint ghost is not found in the registry of domain-b.test');
  });

  it('another domain\'s endpoint: FOREIGN_DOMAIN, the registry not asked', async () => {
    const s = setup();
    const err = await s.server.request(remote(), { connection: conn('icmp-x@domain-c.test', 'icmp@domain-c.test') }).catch((e) => e);
    expect(err.code).toBe('FOREIGN_DOMAIN');
    expect(err.message).toContain('endpoint icmp-x@domain-c.test is of domain domain-c.test');
    expect(s.reg.finds).toBe(0);
  });

  it('the inner agent fails: its code, the message naming the relay, the endpoint and the URL; nothing kept', async () => {
    const s = setup();
    const table = new RelayTable();
    const client = {
      request: async () => {
        throw new AgentError('UNAVAILABLE', `cannot reach ${INNER}`);
      },
      close: async () => {},
    };
    const relay = chainServer(interdomainBypassServer({ ownDomain: 'domain-b.test' }), relayServer({ name: 'host-b', domain: 'domain-b.test', table, client }));
    const server = relayingServer({ name: 'host-b', domain: 'domain-b.test', hosts: () => false, nse: s.reg, selfUrl: () => SELF, table, relay, own: s.own });
    const err = await server.request(remote(), { connection: conn('icmp-c@domain-b.test') }).catch((e) => e);
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.message).toBe(`nsmgr-proxy host-b of domain-b.test: relaying to endpoint icmp-c at ${INNER}: cannot reach ${INNER}`);
    expect(table.size).toBe(0);
  });

  it('the registry fails: UNAVAILABLE naming the relay and the endpoint', async () => {
    const s = setup({ fail: new AgentError('UNAVAILABLE', 'registry down') });
    const err = await s.server.request(remote(), { connection: conn('icmp-c@domain-b.test') }).catch((e) => e);
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.message).toContain('nsmgr-proxy host-b of domain-b.test: finding endpoint icmp-c in the registry of domain-b.test: registry down');
  });

  it('a refresh while the registry is down goes to the agent the Request went to', async () => {
    const s = setup();
    const answer = await s.server.request(remote(), { connection: conn('icmp-c@domain-b.test') });
    const down = setup({ fail: new AgentError('UNAVAILABLE', 'registry down') });
    const server = relayingServer({ name: 'host-b', domain: 'domain-b.test', hosts: () => false, nse: down.reg, selfUrl: () => SELF, table: s.table, relay: chainServer(interdomainBypassServer({ ownDomain: 'domain-b.test' }), relayServer({ name: 'host-b', domain: 'domain-b.test', table: s.table, client: chainClient(s.inner) })), own: s.own });
    // the caller's refresh carries the path the answer had, the relay's segment in it
    await server.request(remote(), { connection: { ...answer, id: 'p1' } });
    expect(s.urls.all).toEqual([INNER, INNER]);
    s.table.close();
  });

  it('a Close after the endpoint left the registry goes to the URL the Request went to', async () => {
    const entries = [{ name: 'icmp-c', url: INNER }];
    const s = setup({ entries });
    const answer = await s.server.request(remote(), { connection: conn('icmp-c@domain-b.test') });
    entries.length = 0;
    await s.server.close(remote(), answer);
    expect(s.urls.all).toEqual([INNER, INNER]);
    expect(s.inner.closes).toHaveLength(1);
  });
});

describe('RelayTable', () => {
  it('forgets a connection when the caller\'s expiry passes, reporting it deleted', async () => {
    const table = new RelayTable();
    const events: string[] = [];
    table.hub.update({ id: 'p1', state: 'UP' });
    table.hub.subscribe(null, (e) => events.push(String(e.type)));
    table.remember('p1', INNER, Date.now() + 20, Date.now());
    await new Promise((r) => setTimeout(r, 60));
    expect(table.urlOf('p1')).toBeUndefined();
    expect(table.hub.get('p1')).toBeUndefined();
    expect(events).toContain('DELETE');
  });

  it('down() marks the caller\'s view DOWN', () => {
    const table = new RelayTable();
    table.hub.update({ id: 'p1', state: 'UP' });
    table.down('p1');
    expect(table.hub.get('p1')?.state).toBe('DOWN');
    table.close();
  });
});
