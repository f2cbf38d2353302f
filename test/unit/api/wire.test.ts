/**
 * Wire compatibility: our .proto files must produce exactly the bytes upstream NSM does. Each
 * case builds the expected bytes by hand from the field numbers and wire types of the
 * networkservicemesh/api .proto files, and checks both directions (encode equals, decode gives back).
 */
import { describe, it, expect } from 'vitest';
import path from 'node:path';
import protobuf from 'protobufjs';

const root = new protobuf.Root();
root.resolvePath = (_origin, target) => {
  for (const dir of ['networkservice', 'registry', 'agent', 'grpc']) {
    const p = path.join(__dirname, '../../../proto', dir, target);
    if (require('node:fs').existsSync(p)) return p;
  }
  return target; // google/protobuf/* are built into protobufjs
};
root.loadSync(['connection.proto', 'connectioncontext.proto', 'networkservice.proto', 'registry.proto'], { keepCase: true });
root.resolveAll();

// ---- a tiny hand encoder ----
const varint = (n: number | bigint): number[] => {
  let v = BigInt(n);
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return out;
};
const tag = (field: number, wire: number) => varint((field << 3) | wire);
const str = (field: number, s: string) => {
  const b = [...Buffer.from(s)];
  return [...tag(field, 2), ...varint(b.length), ...b];
};
const msg = (field: number, body: number[]) => [...tag(field, 2), ...varint(body.length), ...body];
const uint = (field: number, n: number) => [...tag(field, 0), ...varint(n)];
const entry = (field: number, k: string, v: number[] | string) =>
  msg(field, [...str(1, k), ...(typeof v === 'string' ? str(2, v) : msg(2, v))]);

function check(typeName: string, obj: Record<string, unknown>, bytes: number[]) {
  const T = root.lookupType(typeName);
  const encoded = Buffer.from(T.encode(T.fromObject(obj)).finish());
  expect(encoded.toString('hex')).toBe(Buffer.from(bytes).toString('hex'));
  const decoded = T.toObject(T.decode(Buffer.from(bytes)), { enums: String, longs: String });
  expect(decoded).toMatchObject(obj);
}

describe('wire format', () => {
  it('connection.Mechanism: cls=1, type=2, parameters=3 (map)', () => {
    check('connection.Mechanism', { cls: 'LOCAL', type: 'KERNEL', parameters: { name: 'nsm-1' } }, [
      ...str(1, 'LOCAL'),
      ...str(2, 'KERNEL'),
      ...entry(3, 'name', 'nsm-1'),
    ]);
  });

  it('connection.Connection: id=1, network_service=2, labels=5, path=6, nse name=7, payload=8, state=9', () => {
    check(
      'connection.Connection',
      {
        id: 'c1',
        network_service: 'icmp',
        labels: { app: 'x' },
        path: { index: 1, path_segments: [{ name: 'nsc', id: 'c1' }] },
        network_service_endpoint_name: 'nse-1',
        payload: 'IP',
        state: 'DOWN',
      },
      [
        ...str(1, 'c1'),
        ...str(2, 'icmp'),
        ...entry(5, 'app', 'x'),
        ...msg(6, [...uint(1, 1), ...msg(2, [...str(1, 'nsc'), ...str(2, 'c1')])]),
        ...str(7, 'nse-1'),
        ...str(8, 'IP'),
        ...uint(9, 1),
      ],
    );
  });

  it('connection.PathSegment: token=3, expires=4 (Timestamp seconds=1), metrics=5', () => {
    check('connection.PathSegment', { token: 't', expires: { seconds: '1700000000' }, metrics: { a: 'b' } }, [
      ...str(3, 't'),
      ...msg(4, uint(1, 1700000000)),
      ...entry(5, 'a', 'b'),
    ]);
  });

  it('connection.State and ConnectionEventType numbers', () => {
    const State = root.lookupEnum('connection.State');
    expect(State.values).toEqual({ UP: 0, DOWN: 1, REFRESH_REQUESTED: 2, RESELECT_REQUESTED: 3 });
    const T = root.lookupEnum('connection.ConnectionEventType');
    expect(T.values).toEqual({ INITIAL_STATE_TRANSFER: 0, UPDATE: 1, DELETE: 2 });
  });

  it('connection.ConnectionEvent: type=1, connections=2 (map of Connection)', () => {
    check('connection.ConnectionEvent', { type: 'DELETE', connections: { k: { id: 'k' } } }, [
      ...uint(1, 2),
      ...entry(2, 'k', str(1, 'k')),
    ]);
  });

  it('connection.MonitorScopeSelector: path_segments=1, network_services=2', () => {
    check('connection.MonitorScopeSelector', { path_segments: [{ id: 'x' }], network_services: ['s'] }, [
      ...msg(1, str(2, 'x')),
      ...str(2, 's'),
    ]);
  });

  it('connectioncontext.ConnectionContext: ip_context=1, dns_context=2, ethernet_context=3, extra_context=4, MTU=5', () => {
    check(
      'connectioncontext.ConnectionContext',
      {
        ip_context: {
          src_ip_addrs: ['172.16.1.101/32'],
          dst_ip_addrs: ['172.16.1.100/32'],
          src_routes: [{ prefix: '172.16.1.100/32', nextHop: '1.1.1.1' }],
          excluded_prefixes: ['10.0.0.0/8'],
          ip_neighbors: [{ ip: '1.2.3.4', hardware_address: 'aa' }],
          policies: [{ from: 'f', proto: '6', dst_port: '80', src_port: '1-2' }],
        },
        dns_context: { configs: [{ dns_server_ips: ['9.9.9.9'], search_domains: ['x'] }] },
        ethernet_context: { src_mac: 'm', vlan_tag: 7 },
        extra_context: { k: 'v' },
        MTU: 1446,
      },
      [
        ...msg(1, [
          ...str(1, '172.16.1.101/32'),
          ...str(2, '172.16.1.100/32'),
          ...msg(5, [...str(1, '172.16.1.100/32'), ...str(2, '1.1.1.1')]),
          ...str(7, '10.0.0.0/8'),
          ...msg(8, [...str(1, '1.2.3.4'), ...str(2, 'aa')]),
          ...msg(11, [...str(1, 'f'), ...str(2, '6'), ...str(3, '80'), ...str(4, '1-2')]),
        ]),
        ...msg(2, msg(1, [...str(1, '9.9.9.9'), ...str(2, 'x')])),
        ...msg(3, [...str(1, 'm'), ...uint(3, 7)]),
        ...entry(4, 'k', 'v'),
        ...uint(5, 1446),
      ],
    );
  });

  it('connectioncontext.IPContext: required flags=3/4, dst_routes=6, extra_prefix_request=9, extra_prefixes=10', () => {
    check(
      'connectioncontext.IPContext',
      {
        src_ip_required: true,
        dst_ip_required: true,
        dst_routes: [{ prefix: 'p' }],
        extra_prefix_request: [{ addr_family: { family: 'IPV6' }, prefix_len: 24, required_number: 1, requested_number: 2 }],
        extra_prefixes: ['e'],
      },
      [
        ...uint(3, 1),
        ...uint(4, 1),
        ...msg(6, str(1, 'p')),
        ...msg(9, [...msg(1, uint(1, 1)), ...uint(2, 24), ...uint(3, 1), ...uint(4, 2)]),
        ...str(10, 'e'),
      ],
    );
  });

  it('networkservice.NetworkServiceRequest: connection=1, mechanism_preferences=2', () => {
    check('networkservice.NetworkServiceRequest', { connection: { id: 'a' }, mechanism_preferences: [{ type: 'KERNEL' }] }, [
      ...msg(1, str(1, 'a')),
      ...msg(2, str(2, 'KERNEL')),
    ]);
  });

  it('registry.NetworkService: name=1, payload=2, matches=3 (Match fields 1..4), path_ids=4', () => {
    check(
      'registry.NetworkService',
      {
        name: 'svc',
        payload: 'ETHERNET',
        matches: [
          {
            source_selector: { a: 'b' },
            routes: [{ destination_selector: { c: 'd' }, weight: 5 }],
            fallthrough: true,
            metadata: { labels: { e: 'f' } },
          },
        ],
        path_ids: ['spiffe://x/y'],
      },
      [
        ...str(1, 'svc'),
        ...str(2, 'ETHERNET'),
        ...msg(3, [
          ...entry(1, 'a', 'b'),
          ...msg(2, [...entry(1, 'c', 'd'), ...uint(2, 5)]),
          ...uint(3, 1),
          ...msg(4, entry(1, 'e', 'f')),
        ]),
        ...str(4, 'spiffe://x/y'),
      ],
    );
  });

  it('registry.NetworkServiceEndpoint: fields 1..7', () => {
    check(
      'registry.NetworkServiceEndpoint',
      {
        name: 'nse',
        network_service_names: ['svc'],
        network_service_labels: { svc: { labels: { app: 'x' } } },
        url: 'tcp://1.2.3.4:5001',
        expiration_time: { seconds: '10' },
        initial_registration_time: { seconds: '5' },
        path_ids: ['id'],
      },
      [
        ...str(1, 'nse'),
        ...str(2, 'svc'),
        ...entry(3, 'svc', entry(1, 'app', 'x')),
        ...str(4, 'tcp://1.2.3.4:5001'),
        ...msg(5, uint(1, 10)),
        ...msg(6, uint(1, 5)),
        ...str(7, 'id'),
      ],
    );
  });

  it('registry queries and responses: (message=1, watch|deleted=2)', () => {
    check('registry.NetworkServiceQuery', { network_service: { name: 'a' }, watch: true }, [...msg(1, str(1, 'a')), ...uint(2, 1)]);
    check('registry.NetworkServiceEndpointQuery', { network_service_endpoint: { url: 'u' }, watch: true }, [
      ...msg(1, str(4, 'u')),
      ...uint(2, 1),
    ]);
    check('registry.NetworkServiceResponse', { network_service: { name: 'a' }, deleted: true }, [...msg(1, str(1, 'a')), ...uint(2, 1)]);
    check('registry.NetworkServiceEndpointResponse', { network_service_endpoint: { name: 'n' }, deleted: true }, [
      ...msg(1, str(1, 'n')),
      ...uint(2, 1),
    ]);
  });

  it('service and method paths are the upstream ones', () => {
    const paths = (svc: string) =>
      Object.values(root.lookupService(svc).methods).map((m) => `/${svc}/${m.name}`);
    expect(paths('networkservice.NetworkService')).toEqual(['/networkservice.NetworkService/Request', '/networkservice.NetworkService/Close']);
    expect(paths('connection.MonitorConnection')).toEqual(['/connection.MonitorConnection/MonitorConnections']);
    expect(paths('registry.NetworkServiceRegistry')).toEqual([
      '/registry.NetworkServiceRegistry/Register',
      '/registry.NetworkServiceRegistry/Find',
      '/registry.NetworkServiceRegistry/Unregister',
    ]);
    expect(paths('registry.NetworkServiceEndpointRegistry')).toEqual([
      '/registry.NetworkServiceEndpointRegistry/Register',
      '/registry.NetworkServiceEndpointRegistry/Find',
      '/registry.NetworkServiceEndpointRegistry/Unregister',
    ]);
    expect(root.lookupService('connection.MonitorConnection').methods['MonitorConnections']!.responseStream).toBe(true);
  });
});
