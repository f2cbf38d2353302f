/**
 * The agent's NetworkService and registry definitions (proto/) against upstream NSM's own
 * (test/fixtures/upstream): the same method paths and streaming, and every field of the
 * messages that cross domains survives the trip both ways, bytes from one side decoded by the
 * other. What the agent puts in those fields is checked end to end in
 * test/e2e/upstream-interdomain.test.ts.
 */
import { describe, it, expect } from 'vitest';
import type * as grpc from '@grpc/grpc-js';
import { api } from '../../../src/api';
import { UpstreamNetworkService, UpstreamNseRegistry, UpstreamNsRegistry } from '../../helpers/upstream-nsm';

type Def = grpc.MethodDefinition<unknown, unknown>;

const ours = () => {
  const a = api();
  return {
    ns: a.ns.networkservice.NetworkService.service as unknown as Record<string, Def>,
    nsReg: a.reg.registry.NetworkServiceRegistry.service as unknown as Record<string, Def>,
    nseReg: a.reg.registry.NetworkServiceEndpointRegistry.service as unknown as Record<string, Def>,
  };
};
const theirs = {
  ns: UpstreamNetworkService.service as unknown as Record<string, Def>,
  nsReg: UpstreamNsRegistry.service as unknown as Record<string, Def>,
  nseReg: UpstreamNseRegistry.service as unknown as Record<string, Def>,
};

const ts = { seconds: 1_900_000_000, nanos: 5 };

/** A Request with every field set, as an interdomain one carries. */
const request = {
  connection: {
    id: 'conn-1',
    network_service: 'icmp@domain-b.test',
    mechanism: { cls: 'REMOTE', type: 'WIREGUARD', parameters: { src_ip: '10.0.1.1', dst_ip: '10.0.2.1', src_original_ip: '192.168.1.1' } },
    context: {
      ip_context: {
        src_ip_addrs: ['172.16.2.1/32'],
        dst_ip_addrs: ['172.16.2.0/32'],
        src_ip_required: true,
        dst_ip_required: true,
        src_routes: [{ prefix: '172.16.2.0/32', nextHop: '' }],
        dst_routes: [{ prefix: '172.16.2.1/32', nextHop: '172.16.2.1' }],
        excluded_prefixes: ['10.96.0.0/12'],
        ip_neighbors: [{ ip: '172.16.2.0', hardware_address: '02:00:00:00:00:01' }],
        extra_prefix_request: [{ addr_family: { family: 'IPV6' }, prefix_len: 64, required_number: 1, requested_number: 2 }],
        extra_prefixes: ['fd00::/64'],
        policies: [{ from: '172.16.2.1/32', proto: '6', dst_port: '80', src_port: '1000-2000', routes: [{ prefix: '0.0.0.0/0', nextHop: '172.16.2.0' }] }],
      },
      dns_context: { configs: [{ dns_server_ips: ['172.16.2.0'], search_domains: ['my.domain'] }] },
      ethernet_context: { src_mac: '02:00:00:00:00:01', dst_mac: '02:00:00:00:00:02', vlan_tag: 7 },
      extra_context: { k: 'v' },
      MTU: 1420,
    },
    labels: { nodeName: 'host-a' },
    path: {
      index: 1,
      path_segments: [
        { name: 'nsc', id: 'id-0', token: 'a.b.c', expires: ts, metrics: { m: '1' } },
        { name: 'host-a', id: 'id-1', token: 'd.e.f', expires: ts, metrics: {} },
      ],
    },
    network_service_endpoint_name: 'icmp-b@domain-b.test',
    payload: 'IP',
    state: 'REFRESH_REQUESTED',
  },
  mechanism_preferences: [
    { cls: 'REMOTE', type: 'WIREGUARD', parameters: { src_ip: '10.0.1.1', src_port: '51820', public_key: 'k' } },
    { cls: 'REMOTE', type: 'VXLAN', parameters: { src_ip: '10.0.1.1' } },
  ],
};

const nse = {
  name: 'icmp-b',
  network_service_names: ['icmp'],
  network_service_labels: { icmp: { labels: { app: 'x' } } },
  url: 'tcp://10.0.2.1:5001',
  expiration_time: ts,
  initial_registration_time: { seconds: 1_800_000_000, nanos: 0 },
  path_ids: ['p1', 'p2'],
};
const ns = {
  name: 'icmp',
  payload: 'IP',
  matches: [{ source_selector: { a: 'b' }, routes: [{ destination_selector: { c: 'd' }, weight: 3 }], fallthrough: true, metadata: { labels: { e: 'f' } } }],
  path_ids: ['p1'],
};

/**
 * `msg` encoded by ours (a) and by upstream's (b): the same bytes; upstream decodes ours as
 * `msg`, and each side decodes the other's bytes as it decodes its own (int64 seconds are
 * strings in ours, numbers in upstream's loader here).
 */
function bothWays(a: Def, b: Def, dir: 'request' | 'response', msg: unknown): void {
  const [encA, decA, encB, decB] =
    dir === 'request'
      ? [a.requestSerialize, a.requestDeserialize, b.requestSerialize, b.requestDeserialize]
      : [a.responseSerialize, a.responseDeserialize, b.responseSerialize, b.responseDeserialize];
  expect(encA(msg).equals(encB(msg))).toBe(true);
  expect(decB(encA(msg))).toMatchObject(msg as object);
  expect(decB(encA(msg))).toEqual(decB(encB(msg)));
  expect(decA(encB(msg))).toEqual(decA(encA(msg)));
}

describe('proto/networkservice and proto/registry against upstream\'s', () => {
  it('have the same services, method paths and streaming', () => {
    const o = ours();
    for (const k of ['ns', 'nsReg', 'nseReg'] as const) {
      expect(Object.keys(o[k]).sort()).toEqual(Object.keys(theirs[k]).sort());
      for (const [name, m] of Object.entries(theirs[k])) {
        const mine = o[k][name]!;
        expect(mine.path).toBe(m.path);
        expect([mine.requestStream, mine.responseStream]).toEqual([m.requestStream, m.responseStream]);
      }
    }
    expect(theirs.ns['Request']!.path).toBe('/networkservice.NetworkService/Request');
    expect(theirs.nseReg['Find']!.path).toBe('/registry.NetworkServiceEndpointRegistry/Find');
  });

  it('a Request and its Connection answer decode both ways with every field', () => {
    const o = ours();
    bothWays(o.ns['Request']!, theirs.ns['Request']!, 'request', request);
    bothWays(o.ns['Request']!, theirs.ns['Request']!, 'response', request.connection);
    bothWays(o.ns['Close']!, theirs.ns['Close']!, 'request', request.connection);
  });

  it('registry queries, answers and registrations decode both ways with every field', () => {
    const o = ours();
    bothWays(o.nseReg['Find']!, theirs.nseReg['Find']!, 'request', { network_service_endpoint: nse, watch: true });
    bothWays(o.nseReg['Find']!, theirs.nseReg['Find']!, 'response', { network_service_endpoint: nse, deleted: true });
    bothWays(o.nseReg['Register']!, theirs.nseReg['Register']!, 'request', nse);
    bothWays(o.nsReg['Find']!, theirs.nsReg['Find']!, 'request', { network_service: ns, watch: true });
    bothWays(o.nsReg['Find']!, theirs.nsReg['Find']!, 'response', { network_service: ns, deleted: false });
    bothWays(o.nsReg['Register']!, theirs.nsReg['Register']!, 'request', ns);
  });
});
