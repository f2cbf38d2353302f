// Connect latency through a one-element passthrough against a direct connect, one agent, one
// run: `bench-direct` reaches the gateway endpoint straight; `bench-composed` (matches: {} ->
// app=ips, app=ips -> app=gateway) passes a passthrough endpoint first, whose two interfaces
// join a bridge in its namespace. The two take turns run by run (interleaved); each connect is
// an NSM Request on the agent's unix socket (grpc-js client) until the answer, teardown not
// timed.
//
// Usage (root): npm run build && node bench/composition.mjs [runs]
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { NsmClient, kernelRequest } from '../test/harness/clients.mjs';
import { args, summary, ms, table, machine, writeSection, TAG, date } from './lib.mjs';
import { main } from './scope.mjs';

const opt = args();
const N = Number(opt._[0] ?? 100);
const GW = `nsmb${TAG}-gw`;
const IPS = `nsmb${TAG}-ips`;
const NSC = `nsmb${TAG}-nsc`;

async function timed(fn) {
  const t0 = performance.now();
  const out = await fn();
  return [performance.now() - t0, out];
}

main(async (scope) => {
  const dir = scope.dir('nsmb-');
  for (const n of [GW, IPS, NSC]) await scope.netns(n);
  const agent = await scope.agent({
    dir,
    config: {
      endpoints: [
        { name: 'gateway', services: ['bench-direct', 'bench-composed'], cidr: '10.210.0.0/16', netns: GW, labels: { app: 'gateway' } },
        { name: 'ips', services: ['bench-composed'], passthrough: true, netns: IPS, labels: { app: 'ips' } },
      ],
    },
  });
  const manifest = path.join(dir, 'bench-composed.yaml');
  writeFileSync(
    manifest,
    [
      'apiVersion: networkservicemesh.io/v1',
      'kind: NetworkService',
      'metadata: {name: bench-composed}',
      'spec:',
      '  payload: IP',
      '  matches:',
      '    - source_selector: {app: ips}',
      '      routes: [{destination_selector: {app: gateway}}]',
      '    - source_selector: {}',
      '      routes: [{destination_selector: {app: ips}}]',
      '',
    ].join('\n'),
  );
  const applied = agent.cli(['apply', '-f', manifest]);
  if (applied.code !== 0) throw new Error(`apply: ${applied.stderr}`);

  const c = new NsmClient(agent.socket, { timeoutMs: 60_000 });
  scope.defer(() => c.dispose());
  const paths = {
    direct: (i) => c.request(kernelRequest(`d-${i}`, 'bench-direct', NSC, `d${i}`)),
    passthrough: (i) => c.request(kernelRequest(`p-${i}`, 'bench-composed', NSC, `p${i}`)),
  };
  const one = async (p, i) => {
    const [t, conn] = await timed(() => paths[p](i));
    if (p === 'passthrough' && conn.network_service_endpoint_name !== 'ips') throw new Error(`composed connect went to ${conn.network_service_endpoint_name}`);
    await c.close(conn);
    return t;
  };
  for (let i = 0; i < 10; i++) for (const p of Object.keys(paths)) await one(p, -1 - i);

  const seq = { direct: [], passthrough: [] };
  for (let i = 0; i < N; i++) {
    const order = i % 2 ? ['passthrough', 'direct'] : ['direct', 'passthrough'];
    for (const p of order) seq[p].push(await one(p, i));
  }
  const S = { direct: summary(seq.direct), passthrough: summary(seq.passthrough) };
  const row = (name, s) => [name, s.n, ms(s.p50), ms(s.p99)];
  const body = [
    '## Connect through a passthrough endpoint (issue 25)',
    '',
    `Command: \`node bench/composition.mjs ${N}\` (after \`npm run build\`), ${date()}.`,
    `Machine: ${machine()}; load average ${os.loadavg()[0].toFixed(1)} at the end (other work on the host).`,
    '',
    'One agent; one connect = NSM `Request` over its unix socket (grpc-js client) for a kernel interface in a client',
    'namespace, until the answer. Direct: to a point-to-point endpoint (one veth pair). Through a passthrough: the',
    "service's matches lead the client to a passthrough endpoint, which makes a bridge in its namespace and requests the",
    'same service again with its own labels, reaching the same endpoint (two veth pairs, both passthrough ends bridge',
    'ports). The two take turns run by run; agent warm; teardown not timed. Milliseconds:',
    '',
    table(['path', 'runs', 'p50', 'p99'], [row('direct', S.direct), row('through one passthrough', S.passthrough)]),
    '',
    `Passthrough / direct at p50: ${(S.passthrough.p50 / S.direct.p50).toFixed(2)} (${ms(S.passthrough.p50 - S.direct.p50)} ms more for the second Request, its vWire and the bridge).`,
  ].join('\n');
  console.log(body);
  writeSection('composition', body);
});
