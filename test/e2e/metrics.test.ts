/**
 * End to end: two agents scraped by a real Prometheus (Debian's `prometheus` package). The test
 * starts its own prometheus binary inside host-a's namespace (so it reaches host-a's loopback
 * listener and host-b's on the underlay), with a temporary config and storage, and kills it by
 * PID. After a remote connect and a ping of N packets, the traffic counters of both ends agree
 * with N; the Request latency histogram counted the Request; a heal is counted once, with its
 * cause.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildHosts, type Mesh } from '../harness/hosts.mjs';
import { FakeWorkloadApi } from '../helpers/spire/workload-api';
import { sh, isRoot, until } from '../harness/exec.mjs';
import { links, ping } from '../harness/netns.mjs';
import { NsmClient, kernelRequest } from '../harness/clients.mjs';

const PROMETHEUS = '/usr/bin/prometheus';
const run = isRoot && existsSync(PROMETHEUS) ? describe : describe.skip;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const PROM_PORT = 19090 + (process.pid % 500);
const METRICS_PORT = 9464;

run('metrics scraped by Prometheus', () => {
  let mesh: Mesh;
  let nsc: string;
  let nse: string;
  let prom: ChildProcess | undefined;
  let promDir: string;
  const spire: FakeWorkloadApi[] = [];

  /** An instant query through Prometheus's HTTP API (from inside host-a's namespace). */
  function query(q: string): { metric: Record<string, string>; value: [number, string] }[] {
    const r = sh('ip', ['netns', 'exec', mesh.hosts[0]!.netns, 'curl', '-sf', '--get', '--data-urlencode', `query=${q}`, `http://127.0.0.1:${PROM_PORT}/api/v1/query`]);
    if (r.code !== 0) return [];
    const body = JSON.parse(r.stdout);
    return body.status === 'success' ? body.data.result : [];
  }
  const value = (q: string): number | undefined => {
    const [first] = query(q);
    return first ? Number(first.value[1]) : undefined;
  };
  /** The value of `metric{selector}` from a scrape made after `after` (ms since the epoch). */
  async function freshValue(metric: string, after: number): Promise<number> {
    const v = await until(() => {
      const ts = value(`timestamp(${metric})`);
      return ts !== undefined && ts * 1000 > after ? { v: value(metric) } : undefined;
    }, 15_000, 200);
    if (v?.v === undefined) throw new Error(`no scrape of ${metric} after ${new Date(after).toISOString()}`);
    return v.v;
  }

  beforeAll(async () => {
    const first = await FakeWorkloadApi.start({ trustDomains: ['example.org'], entries: [{ id: 'spiffe://example.org/host-a', ttlMs: 600_000 }] });
    spire.push(first, await FakeWorkloadApi.start({ sameCasAs: first, entries: [{ id: 'spiffe://example.org/host-b', ttlMs: 600_000 }] }));
    mesh = await buildHosts(2, 'mt');
    nsc = mesh.netns('nsc');
    nse = mesh.netns('nse');
    const [a, b] = mesh.hosts;
    // Liveness every second: few enough extra echoes that the counters stay close to N.
    const heal = { livenessInterval: '1s' };
    await mesh.start(1, {
      identity: { source: 'spiffe', socket: spire[1]!.address },
      listen: { tcp: `${b!.ip}:5001` },
      registry: { url: 'embedded' },
      heal,
      metrics: { listen: `${b!.ip}:${METRICS_PORT}` }, // plain HTTP beyond loopback: warned about
      logLevel: 'info', // SIGUSR1/SIGUSR2 are checked against it
      endpoints: [{ name: 'icmp-b', services: ['icmp-responder'], cidr: '172.16.1.0/24', netns: nse }],
    });
    await mesh.start(0, {
      identity: { source: 'spiffe', socket: spire[0]!.address },
      listen: { tcp: `${a!.ip}:5001` },
      registry: { url: `tcp://${b!.ip}:5002` },
      heal,
      metrics: { listen: `127.0.0.1:${METRICS_PORT}` },
    });
    promDir = mkdtempSync(path.join(os.tmpdir(), 'nsmt-prom-'));
    const cfg = path.join(promDir, 'prometheus.yml');
    writeFileSync(
      cfg,
      [
        'global: {scrape_interval: 1s, scrape_timeout: 900ms}',
        'scrape_configs:',
        `  - job_name: host-a`,
        `    static_configs: [{targets: ['127.0.0.1:${METRICS_PORT}']}]`,
        `  - job_name: host-b`,
        `    static_configs: [{targets: ['${b!.ip}:${METRICS_PORT}']}]`,
        '',
      ].join('\n'),
    );
    prom = spawn(
      'ip',
      ['netns', 'exec', a!.netns, PROMETHEUS, `--config.file=${cfg}`, `--storage.tsdb.path=${path.join(promDir, 'data')}`, `--web.listen-address=127.0.0.1:${PROM_PORT}`, '--log.level=warn'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let promLog = '';
    prom.stderr!.on('data', (d) => (promLog += d));
    const up = await until(() => query('up').length === 2 && query('up == 1').length === 2, 30_000, 250);
    if (!up) throw new Error(`prometheus does not scrape both agents: ${promLog.slice(-2000)}`);
  }, 90_000);

  afterAll(async () => {
    if (prom?.pid) {
      prom.kill('SIGKILL');
      await new Promise((r) => (prom!.exitCode !== null ? r(undefined) : prom!.once('exit', r)));
    }
    await mesh?.teardown();
    for (const s of spire) await s.close();
    if (promDir) rmSync(promDir, { recursive: true, force: true });
  });

  it('counts the packets of a ping at both ends, and the Request in the latency histogram', async () => {
    const a = mesh.hosts[0]!.agent!;
    const c = a.cliJson(['connect', 'kernel://icmp-responder/nsm-1', '--netns', nsc, '--id', 'm-1']);
    const dst = c.dstIps[0].split('/')[0];
    expect(ping(nsc, dst, 1)).toBe(true);

    const at = (q: string) => `${q}{network_service="icmp-responder"}`;
    const settled = Date.now();
    const before = {
      aRx: await freshValue(`${at('server_rx_packets_total')}`, settled),
      aTx: await freshValue(`${at('server_tx_packets_total')}`, settled),
      bRx: await freshValue(`${at('client_rx_packets_total')}`, settled),
      bTx: await freshValue(`${at('client_tx_packets_total')}`, settled),
    };
    const N = 100;
    const r = sh('ip', ['netns', 'exec', nsc, 'ping', '-q', '-c', String(N), '-i', '0.01', '-W', '1', dst]);
    expect(r.code).toBe(0);
    const done = Date.now();
    const delta = {
      aRx: (await freshValue(at('server_rx_packets_total'), done)) - before.aRx,
      aTx: (await freshValue(at('server_tx_packets_total'), done)) - before.aTx,
      bRx: (await freshValue(at('client_rx_packets_total'), done)) - before.bRx,
      bTx: (await freshValue(at('client_tx_packets_total'), done)) - before.bTx,
    };
    console.log(`[metrics] ping of ${N}: host-a server rx/tx ${delta.aRx}/${delta.aTx}, host-b client rx/tx ${delta.bRx}/${delta.bTx}`);
    // host-a: the client sent N echoes (server rx) and got N replies (server tx); host-b
    // delivered N echoes to the endpoint (client tx) and took N replies from it (client rx).
    // The liveness check (one echo a second) adds a few.
    for (const d of Object.values(delta)) {
      expect(d).toBeGreaterThanOrEqual(N);
      expect(d).toBeLessThanOrEqual(N + 8);
    }
    const labels = query(at('server_rx_packets_total'))[0]!.metric;
    // (Prometheus drops empty labels: host-a has no endpoint-side interface, host-b no client-side one.)
    expect(labels).toMatchObject({ job: 'host-a', nsc_interface: 'nsm-1', nsc: 'host-a-nsc' });
    expect(labels).not.toHaveProperty('nse_interface');
    expect(labels['connection_id']).toBeTruthy();
    const bLabels = query(at('client_rx_bytes_total'))[0]!.metric;
    expect(bLabels).toMatchObject({ job: 'host-b', nse_interface: expect.stringMatching(/^icmp-respo-/) });
    expect(bLabels).not.toHaveProperty('nsc_interface');

    // `nsm-agent status` shows the same figures, as the client's interface counts them, and
    // the tunnel's handshake age; host-b shows its endpoint-side end.
    const shown = a.cliJson(['status']).connections.find((x: any) => x.clientId === 'm-1').traffic;
    expect(shown).toMatchObject({ side: 'client' });
    expect(shown.txPackets).toBeGreaterThanOrEqual(before.aRx + N);
    expect(shown.rxPackets).toBeGreaterThanOrEqual(before.aTx + N);
    expect(shown.handshakeAgeMs).toBeGreaterThan(0);
    expect(shown.handshakeAgeMs).toBeLessThan(180_000);
    const shownB = mesh.hosts[1]!.agent!.cliJson(['status']).connections.find((x: any) => x.clientId === 'm-1').traffic;
    expect(shownB).toMatchObject({ side: 'endpoint' });
    expect(shownB.rxPackets).toBeGreaterThanOrEqual(before.bTx + N);
    expect(a.cli(['status']).stdout).toMatch(/^\s+client rx \S+ \S+ \(\d+\), tx \S+ \S+ \(\d+\), handshake \d+s ago$/m);

    // The Request was timed at both agents: a remote endpoint at host-a, a local one at host-b.
    expect(value('nsm_agent_request_duration_seconds_count{job="host-a",endpoint="remote",mechanism="KERNEL"}')).toBeGreaterThanOrEqual(1);
    expect(value('nsm_agent_request_duration_seconds_count{job="host-b",endpoint="local",mechanism="WIREGUARD"}')).toBeGreaterThanOrEqual(1);
    expect(value('nsm_agent_connections{job="host-a",state="UP",mechanism="KERNEL"}')).toBe(1);
    expect(value('nsm_agent_svid_expiry_timestamp_seconds{job="host-a"}')).toBeGreaterThan(Date.now() / 1000);
    expect(value('nsm_agent_registry_reachable{job="host-a"}')).toBe(1);
  }, 60_000);

  it('counts a heal once, with its cause', async () => {
    const a = mesh.hosts[0]!.agent!;
    const heals = (): Record<string, number> => Object.fromEntries(query('nsm_agent_heals_total{job="host-a"}').map((s) => [s.metric['cause'], Number(s.value[1])]));
    const since = (before: Record<string, number>) =>
      Object.entries(heals())
        .map(([cause, n]) => [cause, n - (before[cause] ?? 0)] as [string, number])
        .filter(([, n]) => n > 0);
    const status = () => a.cliJson(['status']).connections.find((x: any) => x.clientId === 'm-1');
    const dst = status().dstIps[0].split('/')[0];

    // wireguard-go killed: its supervisor restarts it with the same device and keys, usually
    // before the liveness check (one a second, confirmed a second later) gives up. A heal, if
    // the check did fail, is counted once, as a liveness heal.
    let before = heals();
    process.kill(status().tunnel.device.pid as number, 'SIGKILL');
    expect(await until(() => ping(nsc, dst, 1), 10_000, 100)).toBe(true);
    await sleep(4_000);
    const afterKill = since(before);
    console.log(`[metrics] wireguard-go killed: heals counted ${JSON.stringify(afterKill)}`);
    expect(afterKill.length === 0 || JSON.stringify(afterKill) === '[["liveness",1]]').toBe(true);

    // The client's interface set down: the liveness check fails, one heal reselects.
    before = heals();
    const durations = value('sum(nsm_agent_heal_duration_seconds_count{job="host-a",cause="liveness",reselected="true"})') ?? 0;
    expect(sh('ip', ['-n', nsc, 'link', 'set', 'nsm-1', 'down']).code).toBe(0);
    expect(await until(() => links(nsc).some((l) => l.ifname === 'nsm-1' && l.operstate !== 'DOWN') && ping(nsc, dst, 1), 15_000, 100)).toBeTruthy();
    const counted = await until(() => (since(before).length ? since(before) : undefined), 15_000, 250);
    await sleep(3_000); // a second heal would be counted by now
    console.log(`[metrics] interface down: heals counted ${JSON.stringify(since(before))}`);
    expect(counted).toBeTruthy();
    expect(since(before)).toEqual([['liveness', 1]]);
    expect(value('sum(nsm_agent_heal_duration_seconds_count{job="host-a",cause="liveness",reselected="true"})')).toBe(durations + 1);
  }, 90_000);

  it('fills the path segment metrics on a refresh, as the stats element of an NSM forwarder does', async () => {
    const a = mesh.hosts[0]!.agent!;
    const client = new NsmClient(a.socket);
    try {
      const first: any = await client.request(kernelRequest('seg-1', 'icmp-responder', nsc, 'nsm-s'));
      // A raw client (no updatepath of its own): host-a's segment comes first.
      const hop = (conn: any, name: string) => conn.path.path_segments.find((p: any) => p.name === name);
      expect(hop(first, 'host-a').metrics).toEqual({});
      const dst = first.context.ip_context.dst_ip_addrs[0].split('/')[0];
      const N = 20;
      expect(sh('ip', ['netns', 'exec', nsc, 'ping', '-q', '-c', String(N), '-i', '0.01', '-W', '1', dst]).code).toBe(0);
      const again: any = await client.request({ connection: first, mechanism_preferences: [first.mechanism] });
      const hopA = hop(again, 'host-a');
      const hopB = hop(again, 'host-b');
      console.log(`[metrics] segment metrics after a ping of ${N}: ${hopA.name} ${JSON.stringify(hopA.metrics)}; ${hopB.name} ${JSON.stringify(hopB.metrics)}`);
      // host-a: the client's interface (server side); host-b: the endpoint's end (client side).
      expect(Number(hopA.metrics.server_rx_packets)).toBeGreaterThanOrEqual(N);
      expect(Number(hopA.metrics.server_tx_packets)).toBeGreaterThanOrEqual(N);
      expect(Object.keys(hopA.metrics).sort()).toEqual(['server_drops', 'server_rx_bytes', 'server_rx_packets', 'server_tx_bytes', 'server_tx_packets']);
      expect(Number(hopB.metrics.client_tx_packets)).toBeGreaterThanOrEqual(N);
      expect(Number(hopB.metrics.client_rx_packets)).toBeGreaterThanOrEqual(N);
      await client.close(again);
    } finally {
      client.dispose();
    }
  }, 60_000);

  it('SIGUSR1 raises the log level to debug, SIGUSR2 restores it', async () => {
    const b = mesh.hosts[1]!.agent!;
    const out = () => b.logs.join('');
    // A failing control call is logged at debug level ("call failed").
    const failingCall = () => expect(b.cli(['disconnect', 'no-such-connection']).code).not.toBe(0);
    let from = out().length;
    failingCall();
    await sleep(300);
    expect(out().slice(from)).not.toMatch(/level=debug msg="call failed"/);

    process.kill(b.pid, 'SIGUSR1');
    expect(await until(() => out().slice(from).includes('log level raised'), 5_000)).toBeTruthy();
    failingCall();
    expect(await until(() => /level=debug msg="call failed"/.test(out().slice(from)), 5_000)).toBeTruthy();

    process.kill(b.pid, 'SIGUSR2');
    expect(await until(() => out().slice(from).includes('log level restored'), 5_000)).toBeTruthy();
    from = out().length;
    failingCall();
    await sleep(300);
    expect(out().slice(from)).not.toMatch(/level=debug/);
  }, 30_000);
});
