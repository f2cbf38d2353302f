// The Prometheus exporter and its listener: names and labels, per-connection series following
// the connections, histograms and heal counts, HTTP on loopback; and that the agent loads
// prom-client only when asked.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Connection } from '../../../src/api';
import { silentLogger } from '../../../src/core/log';
import { startMetrics, type MetricsSources, type RunningMetrics } from '../../../src/agent/metrics';
import { Exporter } from '../../../src/agent/metrics/exporter';
import https from 'node:https';
import type { X509Source } from '../../../src/spire';
import { LocalCa } from '../../../src/spire/ca';
import { toPem } from '../../../src/spire/x509';
import { StaticSource, contextOf } from '../../helpers/spire/static-source';

const conn = (id: string, state = 0, mech = 'KERNEL'): Connection => ({
  id,
  network_service: 'svc',
  state: state as Connection['state'],
  mechanism: { type: mech, cls: 'LOCAL', parameters: {} },
  path: { index: 1, path_segments: [{ id: `${id}-nsc`, name: 'nsc-host' }, { id, name: 'agent' }] },
});

function sources(conns: Connection[], over: Partial<MetricsSources> = {}): MetricsSources {
  return {
    connections: () => conns,
    // `lo` of this process's namespace stands in for a connection's interface
    interfacesOf: () => ({ server: { netns: '/proc/self/ns/net', ifname: 'lo' } }),
    tunnelOf: () => ({}),
    svidExpiresAt: () => 1_800_000_000_000,
    bundleExpiries: () => [['nsm.local', 1_900_000_000_000]],
    registryHealth: () => undefined,
    vl3Members: () => [],
    dnsAnswers: () => [],
    now: () => Date.now(),
    ...over,
  };
}

describe('Exporter', () => {
  it('serves the traffic counters with upstream names and labels, only for the connections there are', async () => {
    const conns = [conn('c1')];
    const e = new Exporter(sources(conns));
    let text = await e.metrics();
    for (const n of ['server_rx_bytes_total', 'server_tx_bytes_total', 'server_rx_packets_total', 'server_tx_packets_total', 'server_drops_total']) {
      expect(text).toMatch(new RegExp(`^${n}\\{connection_id="c1",network_service="svc",nsc="nsc-host",nsc_interface="lo",nse_interface=""\\} \\d+$`, 'm'));
    }
    expect(text).not.toMatch(/^client_rx_bytes_total\{/m);
    expect(text).toMatch(/^nsm_agent_connections\{state="UP",mechanism="KERNEL"\} 1$/m);
    expect(text).toMatch(/^nsm_agent_svid_expiry_timestamp_seconds 1800000000$/m);
    expect(text).toMatch(/^nsm_agent_bundle_expiry_timestamp_seconds\{trust_domain="nsm.local"\} 1900000000$/m);
    expect(text).not.toMatch(/^nsm_agent_registry_reachable /m);
    conns.length = 0;
    text = await e.metrics();
    expect(text).not.toMatch(/connection_id="c1"/);
    expect(text).not.toMatch(/^nsm_agent_connections\{/m);
  });

  it('counts vL3 members per endpoint and DNS answers by server and response code', async () => {
    const e = new Exporter(
      sources([], {
        vl3Members: () => [['vl3-a', 3]],
        dnsAnswers: () => [
          { server: 'resolver', rcode: 'NOERROR', n: 5 },
          { server: 'vl3', rcode: 'NXDOMAIN', n: 2 },
        ],
      }),
    );
    const text = await e.metrics();
    expect(text).toMatch(/^nsm_agent_vl3_members\{endpoint="vl3-a"\} 3$/m);
    expect(text).toMatch(/^nsm_agent_dns_answers_total\{server="resolver",rcode="NOERROR"\} 5$/m);
    expect(text).toMatch(/^nsm_agent_dns_answers_total\{server="vl3",rcode="NXDOMAIN"\} 2$/m);
  });

  it('escapes label values as the text format wants', async () => {
    const odd = { ...conn('c"1'), network_service: 'a\\b\nc' };
    const text = await new Exporter(sources([odd])).metrics();
    expect(text).toContain('server_rx_bytes_total{connection_id="c\\"1",network_service="a\\\\b\\nc",');
    expect(text).toMatch(/^# TYPE server_rx_bytes_total counter$/m);
  });

  it('counts Requests by endpoint place and mechanism, heals by cause, and registry failures', async () => {
    const e = new Exporter(
      sources([], {
        tunnelOf: (id) => (id === 'r' ? { mechanism: { type: 'WIREGUARD' } } : {}),
        registryHealth: () => ({ url: 'tcp://r:1', state: 'unreachable', since: 1, error: 'x', failures: 3 }),
      }),
    );
    e.requested(conn('l'), 0.003);
    e.requested(conn('r'), 0.2);
    e.healStarted('liveness');
    e.healRecovered('liveness', true, 1.5);
    const text = await e.metrics();
    expect(text).toMatch(/^nsm_agent_request_duration_seconds_count\{endpoint="local",mechanism="KERNEL"\} 1$/m);
    expect(text).toMatch(/^nsm_agent_request_duration_seconds_bucket\{le="0.25",endpoint="remote",mechanism="KERNEL"\} 1$/m);
    expect(text).toMatch(/^nsm_agent_request_duration_seconds_bucket\{le="0.1",endpoint="remote",mechanism="KERNEL"\} 0$/m);
    expect(text).toMatch(/^nsm_agent_heals_total\{cause="liveness"\} 1$/m);
    expect(text).toMatch(/^nsm_agent_heal_duration_seconds_count\{cause="liveness",reselected="true"\} 1$/m);
    expect(text).toMatch(/^nsm_agent_registry_reachable 0$/m);
    expect(text).toMatch(/^nsm_agent_registry_failures_total 3$/m);
  });
});

describe('metrics listener', () => {
  let running: RunningMetrics | undefined;
  afterEach(async () => {
    await running?.close();
    running = undefined;
  });

  it('serves /metrics over HTTP on loopback and 404 elsewhere', async () => {
    running = await startMetrics({ listen: '127.0.0.1:0', tls: false, mtls: false }, sources([conn('c1')]), { identity: {} as X509Source, log: silentLogger });
    const res = await fetch(`http://${running.address}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0.0.4/);
    expect(await res.text()).toMatch(/^server_tx_packets_total\{connection_id="c1"/m);
    expect((await fetch(`http://${running.address}/`)).status).toBe(404);
  });
});

/** GET over HTTPS with the CA's bundle, optionally presenting a client certificate; resolves with the status or the error's code. */
function httpsGet(address: string, ca: LocalCa, client?: { cert: string; key: string }): Promise<number | string> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve) => {
    const req = https.get({ host, port, path: '/metrics', ca: toPem(ca.bundle()), checkServerIdentity: () => undefined, ...(client ?? {}) }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

describe('metrics listener over TLS', () => {
  it('serves with the SVID, and with mtls only to clients with a certificate of the trust domain', async () => {
    const ca = LocalCa.create({ trustDomain: 'example.org' });
    const identity = new StaticSource(contextOf(ca.issue('spiffe://example.org/host-a'), ca));
    const tls = await startMetrics({ listen: '127.0.0.1:0', tls: true, mtls: false }, sources([]), { identity, log: silentLogger });
    const mtls = await startMetrics({ listen: '127.0.0.1:0', tls: true, mtls: true }, sources([]), { identity, log: silentLogger });
    try {
      expect(await httpsGet(tls.address, ca)).toBe(200);
      const svid = ca.issue('spiffe://example.org/prometheus');
      const client = { cert: toPem(svid.chain), key: svid.key.export({ type: 'pkcs8', format: 'pem' }) as string };
      expect(await httpsGet(mtls.address, ca, client)).toBe(200);
      expect(await httpsGet(mtls.address, ca)).not.toBe(200);
      const other = LocalCa.create({ trustDomain: 'other.org' }).issue('spiffe://other.org/x');
      expect(await httpsGet(mtls.address, ca, { cert: toPem(other.chain), key: other.key.export({ type: 'pkcs8', format: 'pem' }) as string })).not.toBe(200);
    } finally {
      await tls.close();
      await mtls.close();
      await identity.close();
    }
  });
});

describe('lazy loading', () => {
  // The built agent (npm run build); skipped when there is none.
  const built = path.resolve(__dirname, '../../../dist/agent/agent.js');
  it.skipIf(!existsSync(built))('the agent module loads neither prom-client nor OpenTelemetry until they are switched on', () => {
    const loaded = execFileSync(
      process.execPath,
      ['-e', `require(${JSON.stringify(built)}); console.log(Object.keys(require.cache).filter((k) => /prom-client|@opentelemetry/.test(k)).length)`],
      { encoding: 'utf8' },
    );
    expect(loaded.trim()).toBe('0');
  });
});
