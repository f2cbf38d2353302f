/** The CLI's status view (what --json prints) and its table, from projected statuses. */
import { describe, it, expect } from 'vitest';
import type { Connection } from '../../../src/api';
import type { HostedEndpoint } from '../../../src/agent/endpoints';
import type { HeldConnection } from '../../../src/agent/held';
import { projectStatus, type StatusSources } from '../../../src/agent/status';
import { printStatus, viewStatus } from '../../../src/agent/cli/status';

const T0 = 1_700_000_000_000;
const NOW = T0 + 600_000;
const wg = { type: 'WIREGUARD', cls: 'REMOTE', parameters: { src_ip: '10.0.0.1', dst_ip: '10.0.0.2' } };
const path = (index: number) => ({
  index,
  path_segments: [{ id: 'wg-1', name: 'host-a-nsc' }, { id: 'a1', name: 'host-a' }, { id: 'b1', name: 'host-b' }, { id: 'e1', name: 'icmp-responder-b' }],
});
const ips = { ip_context: { src_ip_addrs: ['172.16.1.101/32'], dst_ip_addrs: ['172.16.1.100/32'] } };

function sources(extra: Partial<StatusSources>): StatusSources {
  return {
    name: 'host-a',
    version: '1.2.3',
    started: T0,
    registry: 'tcp://10.0.0.3:5002',
    registryHealth: { url: 'tcp://10.0.0.3:5002', state: 'reachable', since: T0 + 1_000, error: '' },
    listen: ['unix:///run/nsm-agent/agent.sock', 'tcp://10.0.0.1:5001'],
    url: 'tcp://10.0.0.1:5001',
    tunnelIp: '10.0.0.1',
    identity: 'spiffe://example.org/host-a from spiffe',
    svid: { id: 'spiffe://example.org/host-a', expires: NOW + 1_800_000, source: 'spiffe' },
    endpoints: [],
    connections: [],
    held: [],
    pending: [],
    tunnelOf: () => ({}),
    journal: { since: () => undefined, nextHop: () => undefined, lastHeal: () => undefined },
    ...extra,
  };
}

/** host-a holds wg-1 to host-b's icmp-responder-b over WireGuard; it healed once. */
function requesting() {
  const conn: Connection = { id: 'a1', network_service: 'icmp-responder', network_service_endpoint_name: 'icmp-responder-b', state: 'UP', mechanism: { type: 'KERNEL', parameters: { name: 'nsm-1' } }, context: ips, path: path(1) };
  const held: HeldConnection = { conn: { id: 'wg-1', path: path(0) }, created: T0 + 60_000, netns: 'nsc', ifname: 'nsm-1', url: 'kernel://icmp-responder/nsm-1' };
  return projectStatus(
    sources({
      connections: [conn],
      held: [held],
      tunnelOf: () => ({ mechanism: wg, device: { type: 'wireguard', device: 'wg0', ifname: 'nsm-1', netns: '/run/netns/nsc' } }),
      journal: {
        since: () => T0 + 60_000,
        nextHop: () => 'tcp://10.0.0.2:5001',
        lastHeal: () => ({ trigger: 'data plane check failed', started: NOW - 30_000, attempts: 1, reselected: true, recovered: NOW - 29_650, count: 1 }),
      },
    }),
  );
}

/** host-b serves wg-1 to its hosted icmp-responder-b. */
function serving() {
  const conn: Connection = { id: 'b1', network_service: 'icmp-responder', network_service_endpoint_name: 'icmp-responder-b', state: 'UP', labels: { nodeName: 'host-a' }, mechanism: wg, context: ips, path: path(2) };
  const ep = { cfg: { name: 'icmp-responder-b', services: ['icmp-responder'], cidr: '172.16.1.100/31', netns: 'nse' }, registration: { url: 'tcp://10.0.0.2:5001' }, connectionCount: () => 1 } as unknown as HostedEndpoint;
  return projectStatus(
    sources({
      name: 'host-b',
      endpoints: [ep],
      connections: [conn],
      tunnelOf: () => ({ device: { type: 'wireguard', device: 'wg3', ifname: 'nsm-9', netns: '/run/netns/nse' } }),
      journal: { since: () => T0 + 61_000, nextHop: () => undefined, lastHeal: () => undefined },
    }),
  );
}

describe('status view (--json)', () => {
  it('the requesting side: direction out, route to the peer agent and its URL, this side\'s addresses first, last heal', () => {
    const v = viewStatus(requesting());
    expect(v.svid).toEqual({ spiffeId: 'spiffe://example.org/host-a', expires: NOW + 1_800_000, source: 'spiffe' });
    const c = v.connections[0]!;
    expect(c.id).toBe('wg-1');
    expect(c.direction).toBe('out');
    expect(c.route).toEqual({ mechanism: 'WIREGUARD', peerAgent: 'host-b', peerHost: '10.0.0.2', peerUrl: 'tcp://10.0.0.2:5001', device: 'wg0' });
    expect([c.localIps, c.peerIps]).toEqual([['172.16.1.101/32'], ['172.16.1.100/32']]);
    expect(c.lastHeal).toEqual({ started: NOW - 30_000, trigger: 'data plane check failed', detail: '', attempts: 1, reselected: true, recovered: NOW - 29_650, count: 1 });
    expect(c.created).toBe(T0 + 60_000);
  });

  it('the serving side: direction in, the client\'s node, the endpoint\'s addresses as this side\'s', () => {
    const c = viewStatus(serving()).connections[0]!;
    expect(c.direction).toBe('in');
    expect(c.clientNode).toBe('host-a');
    expect(c.route).toEqual({ mechanism: 'WIREGUARD', peerAgent: 'host-a', peerHost: '10.0.0.1', peerUrl: '', device: 'wg3' });
    expect([c.localIps, c.peerIps]).toEqual([['172.16.1.100/32'], ['172.16.1.101/32']]);
    expect(c.lastHeal).toBeNull();
  });

  it('reads a response of an older agent (no direction, route, heal or SVID) as before', () => {
    const v = viewStatus({ name: 'x', version: '0', listen: [], endpoints: [], connections: [{ connection: { id: 'c', state: 'UP' }, origin: 'client' }] });
    expect(v.svid).toEqual({ spiffeId: '', expires: undefined, source: '' });
    expect(v.connections[0]).toMatchObject({ id: 'c', direction: 'out', route: null, lastHeal: null });
    expect(printStatus(v, NOW)).toContain('CONNECTIONS');
  });
});

describe('status table', () => {
  it('the requesting side: health header, the connection row with its path, peer and heal lines', () => {
    const out = printStatus(viewStatus(requesting()), NOW);
    if (process.env['SHOW']) console.log(out);
    for (const line of out.split('\n')) expect(line.length).toBeLessThanOrEqual(100);
    expect(out).toContain('agent host-a (nsm-agent 1.2.3), up 10m0s');
    expect(out).toContain('identity:  spiffe://example.org/host-a from spiffe, expires in 30m0s (2023-11-14T22:53:20Z)');
    expect(out).toContain('registry:  tcp://10.0.0.3:5002, reachable for 9m59s');
    const lines = out.split('\n');
    const row = lines.findIndex((l) => l.startsWith('wg-1 '));
    expect(lines[row]).toMatch(/^wg-1 +icmp-responder +UP +WIREGUARD to host-b +9m0s$/);
    expect(lines[row + 1]).toBe('    nsm-1 in nsc: 172.16.1.101/32 -> icmp-responder-b 172.16.1.100/32');
    expect(lines[row + 2]).toBe('    via host-b 10.0.0.2, tcp://10.0.0.2:5001, device wg0');
    expect(lines[row + 3]).toBe('    last heal 30s ago (data plane check failed): back in 350 ms, 1 attempt, reselected');
  });

  it('the serving side lists the connection under SERVED, from the endpoint\'s point of view', () => {
    const out = printStatus(viewStatus(serving()), NOW);
    if (process.env['SHOW']) console.log(out);
    for (const line of out.split('\n')) expect(line.length).toBeLessThanOrEqual(100);
    const [own, served] = out.split('SERVED');
    expect(own).not.toContain('wg-1');
    expect(own).toMatch(/^CONNECTIONS\n\(none\)$/m);
    const lines = served!.split('\n');
    const row = lines.findIndex((l) => l.startsWith('host-a '));
    expect(lines[row]).toMatch(/^host-a +wg-1 +icmp-responder +icmp-responder-b +UP +WIREGUARD from host-a +8m59s$/);
    expect(lines[row + 1]).toBe('    172.16.1.100/32 <- client 172.16.1.101/32');
    expect(lines[row + 2]).toBe('    via host-a 10.0.0.1, device wg3');
  });

  it('an unreachable registry and an expired SVID stand out', () => {
    const s = requesting();
    const v = viewStatus({
      ...s,
      registry_health: { url: 'tcp://10.0.0.3:5002', state: 'unreachable', since: { seconds: String((NOW - 5_000) / 1000), nanos: 0 }, error: 'connect ECONNREFUSED' },
      svid: { ...s.svid, expires: { seconds: String((NOW - 60_000) / 1000), nanos: 0 } },
    });
    const out = printStatus(v, NOW);
    expect(out).toContain('registry:  tcp://10.0.0.3:5002, UNREACHABLE for 5s: connect ECONNREFUSED');
    expect(out).toContain('EXPIRED 1m0s ago');
  });

  it('host DNS: wired through systemd-resolved, or NOT WIRED with the reason under it', () => {
    const v = viewStatus({
      ...requesting(),
      host_dns: [
        { connection_id: 'c1', interface: 'nsm-1', servers: ['172.16.1.100'], domains: ['my.service'], wired: true, reason: '' },
        { connection_id: 'c2', interface: 'nsm-2', servers: ['10.0.0.53'], domains: [], wired: false, reason: 'systemd-resolved SetLinkDNS: resolved not running: org.freedesktop.DBus.Error.ServiceUnknown' },
      ],
    });
    expect(v.hostDns[0]).toEqual({ connectionId: 'c1', interface: 'nsm-1', servers: ['172.16.1.100'], domains: ['my.service'], wired: true, reason: '' });
    const lines = printStatus(v, NOW).split('\n');
    expect(lines).toContain('host DNS:  nsm-1: 172.16.1.100 ~my.service (systemd-resolved)');
    const i = lines.indexOf('host DNS:  nsm-2: 10.0.0.53 NOT WIRED');
    expect(i).toBeGreaterThan(0);
    expect(lines[i + 1]).toBe('    systemd-resolved SetLinkDNS: resolved not running: org.freedesktop.DBus.Error.ServiceUnknown');
    expect(printStatus(viewStatus(requesting()), NOW)).not.toContain('host DNS');
    expect(viewStatus(requesting()).hostDns).toEqual([]);
  });

  it('each federated bundle endpoint: the bundle in use, and a failure with its code', () => {
    const federation = [
      { trustDomain: 'domain-b.org', url: 'https://10.0.0.2:8443/bundle', endpointId: 'spiffe://domain-b.org/host-b', state: 'ok' as const, authorities: 1, sequence: 7, fetched: NOW - 20_000, nextRefresh: NOW + 30_000 },
      {
        trustDomain: 'domain-c.org', url: 'https://10.0.0.3:8443/', endpointId: 'spiffe://domain-c.org/host-c', state: 'failing' as const, authorities: 0,
        lastError: { code: 'BUNDLE_ENDPOINT_UNAVAILABLE', message: 'cannot fetch: connect ECONNREFUSED', at: NOW - 1_000 }, nextRefresh: NOW + 5_000,
      },
    ];
    const v = viewStatus(projectStatus(sources({ federation })));
    expect(v.federation).toEqual([
      { trustDomain: 'domain-b.org', url: 'https://10.0.0.2:8443/bundle', endpointId: 'spiffe://domain-b.org/host-b', state: 'ok', authorities: 1, sequence: 7, fetched: NOW - 20_000, errorCode: '', error: '', nextRefresh: NOW + 30_000 },
      { trustDomain: 'domain-c.org', url: 'https://10.0.0.3:8443/', endpointId: 'spiffe://domain-c.org/host-c', state: 'failing', authorities: 0, sequence: 0, fetched: undefined, errorCode: 'BUNDLE_ENDPOINT_UNAVAILABLE', error: 'cannot fetch: connect ECONNREFUSED', nextRefresh: NOW + 5_000 },
    ]);
    const out = printStatus(v, NOW);
    expect(out).toContain('federated: domain-b.org from https://10.0.0.2:8443/bundle, ok, 1 authority (sequence 7) fetched 20s ago');
    expect(out).toContain('federated: domain-c.org from https://10.0.0.3:8443/, failing, no bundle fetched yet, FAILING: cannot fetch: connect ECONNREFUSED (BUNDLE_ENDPOINT_UNAVAILABLE)');
    expect(viewStatus(projectStatus(sources({}))).federation).toEqual([]);
  });
});
