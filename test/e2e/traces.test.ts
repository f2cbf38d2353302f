/**
 * End to end: one remote Request traced across two agents. An OTLP receiver (test helper)
 * runs in host-a's namespace on its underlay address; host-a switches tracing on as NSM does
 * (TELEMETRY=true, NSM_OPEN_TELEMETRY_ENDPOINT), host-b with `telemetry:` in agent.yaml. The
 * spans of both agents (and of host-b's endpoint) share one trace id, parented hop to hop.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { buildHosts, type Mesh } from '../harness/hosts.mjs';
import { FakeWorkloadApi } from '../helpers/spire/workload-api';
import { isRoot, until } from '../harness/exec.mjs';

const run = isRoot ? describe : describe.skip;
const RECEIVER = path.resolve(__dirname, '../helpers/otlp-receiver.cjs');

interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  attributes: Record<string, string>;
}

run('traces across agents', () => {
  let mesh: Mesh;
  let nsc: string;
  let receiver: ChildProcess | undefined;
  const spans: ReceivedSpan[] = [];
  const spire: FakeWorkloadApi[] = [];

  beforeAll(async () => {
    const first = await FakeWorkloadApi.start({ trustDomains: ['example.org'], entries: [{ id: 'spiffe://example.org/host-a', ttlMs: 600_000 }] });
    spire.push(first, await FakeWorkloadApi.start({ sameCasAs: first, entries: [{ id: 'spiffe://example.org/host-b', ttlMs: 600_000 }] }));
    mesh = await buildHosts(2, 'tr');
    nsc = mesh.netns('nsc');
    const nse = mesh.netns('nse');
    const [a, b] = mesh.hosts;
    const collector = `${a!.ip}:4317`;
    receiver = spawn('ip', ['netns', 'exec', a!.netns, process.execPath, RECEIVER, collector], { stdio: ['ignore', 'pipe', 'inherit'] });
    let buf = '';
    let listening = false;
    receiver.stdout!.on('data', (d) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line === 'listening') listening = true;
        else if (line) spans.push(JSON.parse(line));
      }
    });
    if (!(await until(() => listening, 10_000))) throw new Error('the OTLP receiver did not start');
    await mesh.start(1, {
      identity: { source: 'spiffe', socket: spire[1]!.address },
      listen: { tcp: `${b!.ip}:5001` },
      registry: { url: 'embedded' },
      telemetry: { endpoint: collector },
      endpoints: [{ name: 'icmp-b', services: ['icmp-responder'], cidr: '172.16.1.0/24', netns: nse }],
    });
    await mesh.start(
      0,
      { identity: { source: 'spiffe', socket: spire[0]!.address }, listen: { tcp: `${a!.ip}:5001` }, registry: { url: `tcp://${b!.ip}:5002` } },
      { env: { ...process.env, TELEMETRY: 'true', NSM_OPEN_TELEMETRY_ENDPOINT: collector } },
    );
  }, 90_000);

  afterAll(async () => {
    await mesh?.teardown();
    if (receiver?.pid) {
      receiver.kill('SIGKILL');
      await new Promise((r) => (receiver!.exitCode !== null || receiver!.signalCode !== null ? r(undefined) : receiver!.once('exit', r)));
    }
    for (const s of spire) await s.close();
  });

  it('holds the spans of both agents under one trace id, hop under hop', async () => {
    const a = mesh.hosts[0]!.agent!;
    a.cliJson(['connect', 'kernel://icmp-responder/nsm-1', '--netns', nsc, '--id', 't-1']);
    const hopA = await until(() => spans.find((s) => s.service === 'host-a' && s.name === 'host-a/Request' && s.parentSpanId === ''), 10_000, 100);
    expect(hopA).toBeTruthy();
    const trace = hopA!.traceId;
    const inTrace = () => spans.filter((s) => s.traceId === trace);
    await until(() => inTrace().some((s) => s.service === 'host-b' && s.name === 'icmp-b/Request'), 10_000, 100);
    const got = inTrace();
    console.log(`[traces] ${got.length} spans in trace ${trace}: ${got.map((s) => `${s.service}:${s.name}`).join(', ')}`);
    const names = (svc: string) => got.filter((s) => s.service === svc).map((s) => s.name);
    expect(names('host-a')).toEqual(expect.arrayContaining(['host-a/Request', 'mechanisms/Request', 'discover/Request', 'connect/Request', 'dial/Request']));
    expect(names('host-b')).toEqual(expect.arrayContaining(['host-b/Request', 'mechanisms/Request', 'connect/Request', 'icmp-b/Request']));
    // host-b's hop span is a child of host-a's dial span: the context crossed the wire.
    const dial = got.find((s) => s.service === 'host-a' && s.name === 'dial/Request')!;
    const hopB = got.find((s) => s.service === 'host-b' && s.name === 'host-b/Request')!;
    expect(hopB.parentSpanId).toBe(dial.spanId);
    expect(hopA!.attributes['nsm.network_service']).toBe('icmp-responder');
  }, 60_000);
});
