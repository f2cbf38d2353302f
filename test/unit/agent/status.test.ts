/** The status projection: held and client connections, pending held ones, tunnels, endpoints. */
import { describe, it, expect } from 'vitest';
import type { Connection } from '../../../src/api';
import { fromTimestamp } from '../../../src/api/time';
import type { HostedEndpoint } from '../../../src/agent/endpoints';
import type { HeldConnection } from '../../../src/agent/held';
import { projectStatus, statusLine, type StatusSources } from '../../../src/agent/status';

const serverConn = (id: string, client: string, extra: Partial<Connection> = {}): Connection => ({
  id,
  network_service: 'icmp-responder',
  state: 'UP',
  path: { index: 1, path_segments: [{ id: client, name: 'nsc' }, { id, name: 'host-a' }] },
  ...extra,
});

function sources(extra: Partial<StatusSources> = {}): StatusSources {
  return {
    name: 'host-a',
    version: '1.2.3',
    started: 1_700_000_000_000,
    registry: 'embedded (memory)',
    listen: ['unix:///run/nsm-agent/agent.sock'],
    url: 'unix:///run/nsm-agent/agent.sock',
    tunnelIp: '10.0.0.1',
    identity: 'spiffe://nsm.local/nsm-agent/host-a from dev',
    svid: { id: 'spiffe://nsm.local/nsm-agent/host-a', expires: 1_700_003_600_000, source: 'dev' },
    endpoints: [],
    connections: [],
    held: [],
    pending: [],
    tunnelOf: () => ({}),
    journal: { since: () => undefined, nextHop: () => undefined, lastHeal: () => undefined },
    ...extra,
  };
}

describe('projectStatus', () => {
  it('tells held connections (origin agent, its netns and created) from clients\' ones', () => {
    const held: HeldConnection = {
      conn: { id: 'h1', path: { index: 0, path_segments: [{ id: 'h1', name: 'host-a-nsc' }, { id: 's1', name: 'host-a' }] } },
      created: 1_700_000_001_000,
      netns: 'blue',
      ifname: 'nsm-1',
      url: 'kernel://icmp-responder/nsm-1',
    };
    const s = projectStatus(
      sources({
        held: [held],
        connections: [
          serverConn('s1', 'h1', { mechanism: { type: 'KERNEL', parameters: { name: 'nsm-1', inodeURL: 'file:///run/netns/blue' } } }),
          serverConn('s2', 'x', { mechanism: { type: 'KERNEL', parameters: { name: 'eth9', inodeURL: 'file:///run/netns/red' } } }),
        ],
      }),
    );
    expect(s.connections.map((c) => [c.connection.id, c.origin, c.netns, c.interface, c.connection.state])).toEqual([
      ['s1', 'agent', 'blue', 'nsm-1', 'UP'],
      ['s2', 'client', 'red', 'eth9', 'UP'],
    ]);
    expect(fromTimestamp(s.connections[0]!.created)).toBe(1_700_000_001_000);
    expect(s.connections[1]!.created).toBeUndefined();
    expect(fromTimestamp(s.started)).toBe(1_700_000_000_000);
  });

  it('shows held connections being retried as DOWN, with their service and interface', () => {
    const s = projectStatus(sources({ pending: [{ id: 'c9', url: 'kernel://icmp-responder/nsm-4?app=x', netns: 'green' }] }));
    expect(s.connections).toEqual([
      {
        connection: { id: 'c9', network_service: 'icmp-responder', state: 'DOWN', path: { index: 0, path_segments: [{ id: 'c9', name: 'host-a-nsc' }] } },
        origin: 'agent',
        created: undefined,
        netns: 'green',
        interface: 'nsm-4',
        direction: 'out',
        route: undefined,
        client_node: 'host-a',
      },
    ]);
  });

  it('takes a remote connection\'s interface and netns from its tunnel device', () => {
    const s = projectStatus(
      sources({
        connections: [serverConn('s3', 'x', { mechanism: { type: 'WIREGUARD', parameters: {} } })],
        tunnelOf: (id) => (id === 's3' ? { mechanism: { type: 'WIREGUARD', cls: 'REMOTE' }, device: { ifname: 'wg-3', netns: '/run/netns/nsm-x' } } : {}),
      }),
    );
    const c = s.connections[0]!;
    expect([c.netns, c.interface]).toEqual(['nsm-x', 'wg-3']);
    expect(c.remote).toEqual({ mechanism: { type: 'WIREGUARD', cls: 'REMOTE' }, device: JSON.stringify({ ifname: 'wg-3', netns: '/run/netns/nsm-x' }) });
  });

  it('lists hosted endpoints with their registered URL and connection count', () => {
    const ep = {
      cfg: { name: 'ep-1', services: ['svc'], labels: { a: 'b' }, cidr: '172.16.0.0/24', netns: 'host', payload: 'IP', excludedPrefixes: [] },
      registration: { name: 'ep-1', url: 'tcp://10.0.0.1:5001' },
      connectionCount: () => 3,
      kind: {},
    } as unknown as HostedEndpoint;
    const vl3 = {
      cfg: { name: 'ep-2', services: ['app'], labels: {}, cidr: '', netns: 'nsm-vl3-ep-2', payload: 'IP', excludedPrefixes: [], kind: 'vl3', vl3: { ipam: ['tcp://10.0.0.1:5006'], ownNetns: true } },
      registration: { name: 'ep-2', url: 'tcp://10.0.0.1:5001' },
      connectionCount: () => 2,
      kind: { status: () => ({ prefixes: ['172.16.1.0/24'], addresses: ['172.16.1.0/32'], members: 2, peers: ['ep-1'] }) },
    } as unknown as HostedEndpoint;
    expect(projectStatus(sources({ endpoints: [ep, vl3] })).endpoints).toEqual([
      { name: 'ep-1', services: ['svc'], cidr: '172.16.0.0/24', netns: 'host', url: 'tcp://10.0.0.1:5001', labels: { a: 'b' }, connections: 3 },
      {
        name: 'ep-2',
        services: ['app'],
        cidr: 'vL3 172.16.1.0/24',
        netns: 'nsm-vl3-ep-2',
        url: 'tcp://10.0.0.1:5001',
        labels: {},
        connections: 2,
        vl3: { prefixes: ['172.16.1.0/24'], addresses: ['172.16.1.0/32'], members: 2, peers: ['ep-1'] },
      },
    ]);
  });
});

describe('projectStatus: health, paths, served connections, heals', () => {
  const wgOut = (id: string): Connection => ({
    id,
    network_service: 'icmp-responder',
    network_service_endpoint_name: 'icmp-b',
    state: 'UP',
    labels: { nodeName: 'host-a' },
    mechanism: { type: 'KERNEL', parameters: { name: 'nsm-1', inodeURL: 'file:///run/netns/blue' } },
    context: { ip_context: { src_ip_addrs: ['172.16.1.101/32'], dst_ip_addrs: ['172.16.1.100/32'] } },
    path: { index: 1, path_segments: [{ id: 'h1', name: 'host-a-nsc' }, { id, name: 'host-a' }, { id: 'b1', name: 'host-b' }, { id: 'e1', name: 'icmp-b' }] },
  });
  const wgMech = { type: 'WIREGUARD', cls: 'REMOTE', parameters: { src_ip: '10.0.0.1', dst_ip: '10.0.0.2' } };

  it('an out connection: WIREGUARD to the next agent, its host, the URL dialled, age and last heal', () => {
    const held: HeldConnection = { conn: { id: 'h1', path: wgOut('s1').path! }, created: 1_700_000_001_000, netns: 'blue', ifname: 'nsm-1', url: 'kernel://icmp-responder/nsm-1' };
    const s = projectStatus(
      sources({
        held: [held],
        connections: [wgOut('s1')],
        tunnelOf: () => ({ mechanism: wgMech, device: { type: 'wireguard', device: 'wg7', ifname: 'nsm-1' } }),
        journal: {
          since: () => 1_700_000_009_000,
          nextHop: (id) => (id === 's1' ? 'tcp://10.0.0.2:5001' : undefined),
          lastHeal: (id) => (id === 'h1' ? { trigger: 'connection down', started: 1_700_000_050_000, attempts: 2, reselected: true, recovered: 1_700_000_050_400, count: 3 } : undefined),
        },
      }),
    );
    const c = s.connections[0]!;
    expect(c.direction).toBe('out');
    expect(c.route).toEqual({ mechanism: 'WIREGUARD', peer_agent: 'host-b', peer_host: '10.0.0.2', peer_url: 'tcp://10.0.0.2:5001', device: 'wg7' });
    expect(c.client_node).toBe('host-a');
    expect(fromTimestamp(c.created)).toBe(1_700_000_001_000); // the held connection's own time, not first seen
    expect(c.last_heal).toMatchObject({ trigger: 'connection down', detail: '', attempts: 2, reselected: true, count: 3 });
    expect(fromTimestamp(c.last_heal!.started)).toBe(1_700_000_050_000);
    expect(fromTimestamp(c.last_heal!.recovered)).toBe(1_700_000_050_400);
  });

  it('an in connection: served to a hosted endpoint, from the client agent at the tunnel source, first-seen age', () => {
    const conn: Connection = {
      ...wgOut('b1'),
      network_service_endpoint_name: 'icmp-b',
      mechanism: wgMech,
      path: { index: 2, path_segments: [{ id: 'h1', name: 'host-a-nsc' }, { id: 's1', name: 'host-a' }, { id: 'b1', name: 'host-b' }, { id: 'e1', name: 'icmp-b' }] },
    };
    const ep = { cfg: { name: 'icmp-b', services: ['icmp-responder'] }, registration: {}, connectionCount: () => 1 } as unknown as HostedEndpoint;
    const s = projectStatus(
      sources({
        name: 'host-b',
        endpoints: [ep],
        connections: [conn],
        tunnelOf: () => ({ device: { type: 'wireguard', device: 'wg2' } }),
        journal: { since: (id) => (id === 'b1' ? 1_700_000_020_000 : undefined), nextHop: () => undefined, lastHeal: () => undefined },
      }),
    );
    const c = s.connections[0]!;
    expect(c.direction).toBe('in');
    expect(c.route).toEqual({ mechanism: 'WIREGUARD', peer_agent: 'host-a', peer_host: '10.0.0.1', peer_url: '', device: 'wg2' });
    expect(c.client_node).toBe('host-a');
    expect(fromTimestamp(c.created)).toBe(1_700_000_020_000);
    expect(c.last_heal).toBeUndefined();
  });

  it('a local connection: client and hosted endpoint on this host, over a veth', () => {
    const ep = { cfg: { name: 'local-ep', services: ['local'] }, registration: {}, connectionCount: () => 1 } as unknown as HostedEndpoint;
    const conn = serverConn('s5', 'x', { network_service_endpoint_name: 'local-ep', mechanism: { type: 'KERNEL', parameters: { name: 'nsm-2' } } });
    const c = projectStatus(sources({ endpoints: [ep], connections: [conn] })).connections[0]!;
    expect(c.direction).toBe('local');
    expect(c.route).toEqual({ mechanism: 'KERNEL', peer_agent: '', peer_host: '', peer_url: '', device: '' });
    expect(c.client_node).toBe('host-a');
  });

  it('the SVID: its SPIFFE ID, expiry and source', () => {
    const s = projectStatus(sources());
    expect(s.svid.spiffe_id).toBe('spiffe://nsm.local/nsm-agent/host-a');
    expect(fromTimestamp(s.svid.expires)).toBe(1_700_003_600_000);
    expect(s.svid.source).toBe('dev');
    expect(projectStatus(sources({ svid: { id: '', expires: 0, source: 'spiffe' } })).svid).toEqual({ spiffe_id: '', expires: null, source: 'spiffe' });
  });
});

describe('statusLine', () => {
  it('counts with singulars and says when the registry is down', () => {
    const s = { socket: '/run/nsm-agent/agent.sock', endpoints: 1, connections: 2, registry: 'tcp://reg:5002' };
    expect(statusLine(s)).toBe('serving on /run/nsm-agent/agent.sock, 1 endpoint, 2 connections');
    expect(statusLine({ ...s, endpoints: 0, connections: 1 }, { registryDown: true, note: 'last reload: 1 error(s)' })).toBe(
      'serving on /run/nsm-agent/agent.sock, 0 endpoints, 1 connection, registry tcp://reg:5002 unreachable, last reload: 1 error(s)',
    );
  });
});
