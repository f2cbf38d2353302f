// The exporter keeps each connection's label set between scrapes: a label that changes (a new
// interface name, another network service) shows in the next scrape.
import { describe, expect, it } from 'vitest';
import type { Connection } from '../../../src/api';
import { Exporter } from '../../../src/agent/metrics/exporter';
import type { ConnectionInterfaces } from '../../../src/agent/metrics/traffic';

describe('Exporter traffic labels', () => {
  it('follows a connection whose labels change between scrapes', async () => {
    const conn: Connection = { id: 'c1', network_service: 'svc', path: { index: 1, path_segments: [{ id: 'n', name: 'nsc-host' }, { id: 'c1', name: 'agent' }] } };
    // `lo` of this process's namespace stands in for the connection's interface
    let ifs: ConnectionInterfaces = { server: { netns: '/proc/self/ns/net', ifname: 'lo' } };
    const e = new Exporter({
      connections: () => [conn],
      interfacesOf: () => ifs,
      tunnelOf: () => ({}),
      svidExpiresAt: () => undefined,
      bundleExpiries: () => [],
      registryHealth: () => undefined,
      vl3Members: () => [],
      dnsAnswers: () => [],
      now: () => Date.now(),
    });
    expect(await e.metrics()).toMatch(/^server_rx_bytes_total\{connection_id="c1",network_service="svc",nsc="nsc-host",nsc_interface="lo",nse_interface=""\} \d+$/m);

    ifs = { server: { netns: '/proc/self/ns/net', ifname: 'lo' }, client: { netns: '/proc/self/ns/net', ifname: 'lo' } };
    conn.network_service = 'other';
    const text = await e.metrics();
    expect(text).toMatch(/^server_rx_bytes_total\{connection_id="c1",network_service="other",nsc="nsc-host",nsc_interface="lo",nse_interface="lo"\} \d+$/m);
    expect(text).toMatch(/^client_drops_total\{connection_id="c1",network_service="other",nsc="nsc-host",nsc_interface="lo",nse_interface="lo"\} \d+$/m);
    expect(text).not.toMatch(/network_service="svc"/);
  });
});
