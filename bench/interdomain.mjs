// Interdomain connect: `svc@domain-b.test` against the same service asked for in this domain.
// Two hosts (namespaces on a bridge) and Debian's dnsmasq on host-b holding SRV + A
// registry.nsm-system.domain-b.test. host-b (domain-b.test) serves the registry and the
// endpoint; host-a (domain-a.test) uses host-b's registry as its own, so both names reach the
// same registry, the same endpoint and the same vWire; what differs is the interdomain path
// (DNS answer cached for its TTL, the domain's registry dialed once, names stripped and
// restored on both hosts).
//  1. Uncached: a fresh host-a agent's first connect to `svc` (the agent's own first: its
//     registry dialed, the first WireGuard device made), then its first to `svc@domain-b.test`
//     (the DNS lookup, the domain's registry dialed and its first find included).
//  2. Warm, interleaved in rounds: NSM Request on host-a's unix socket for `svc` and for
//     `svc@domain-b.test` until the answer (both tunnel ends made); close after each, not timed.
//
// Usage (root): npm run build && node bench/interdomain.mjs [rounds] [--fresh N]
import os from 'node:os';
import path from 'node:path';
import { startDnsmasq } from '../test/harness/dnsmasq.mjs';
import { NsmClient, kernelRequest } from '../test/harness/clients.mjs';
import { args, TAG, summary, ms, table, machine, versions, writeSection, date, mono } from './lib.mjs';
import { main } from './scope.mjs';

const opt = args();
const N = Number(opt._[0] ?? 100);
const FRESH = Number(opt.fresh ?? 3);
const P = `nsmi${TAG}`;
const REMOTE = 'svc@domain-b.test';
const LOCAL = 'svc';

main(async (scope) => {
  const load = os.loadavg();
  const dir = scope.dir('nsmi-');
  const mesh = await scope.hosts(2, P, 224);
  const [ha, hb] = mesh.hosts;
  const nsc = mesh.netns('nsc');
  const nse = mesh.netns('nse');
  const dns = await startDnsmasq(hb.netns, hb.ip, [
    `--srv-host=registry.nsm-system.domain-b.test,registry.nsm-system.domain-b.test,5002`,
    `--host-record=registry.nsm-system.domain-b.test,${hb.ip}`,
  ]);
  scope.defer(() => dns.kill('SIGKILL'));
  const identity = { source: 'dev', dev: { caDir: path.join(dir, 'ca'), allowNonLoopback: true } };
  await scope.agent({
    dir,
    name: 'host-b',
    netns: hb.netns,
    config: {
      identity,
      domain: 'domain-b.test',
      listen: { tcp: `${hb.ip}:5001` },
      registry: { url: 'embedded' },
      wireguard: { spares: 4 },
      endpoints: [{ name: 'ep-b', services: [LOCAL], cidr: '10.212.0.0/16', netns: nse }],
    },
  });
  const aConfig = {
    identity,
    domain: 'domain-a.test',
    listen: { tcp: `${ha.ip}:5001` },
    registry: { url: `tcp://${hb.ip}:5002` },
    interdomain: { dnsServers: [hb.ip] },
    wireguard: { spares: 4 },
  };

  let n = 0;
  const once = async (c, service) => {
    const id = `c${n++}`;
    const t0 = mono();
    const conn = await c.request(kernelRequest(id, service, nsc, 'nsm-1'));
    const t = mono() - t0;
    await c.close(conn);
    return t;
  };

  // 1. A fresh agent each time: its first local connect, then its first interdomain one.
  const fresh = { remote: [], local: [] };
  for (let i = 0; i < FRESH; i++) {
    const a = await scope.agent({ dir, name: `host-a${i}`, netns: ha.netns, config: aConfig });
    const c = new NsmClient(a.socket, { timeoutMs: 60_000 });
    fresh.local.push(await once(c, LOCAL));
    fresh.remote.push(await once(c, REMOTE));
    c.dispose();
    await a.stop();
  }

  // 2. Warm, interleaved.
  const a = await scope.agent({ dir, name: 'host-a', netns: ha.netns, config: aConfig });
  const c = new NsmClient(a.socket, { timeoutMs: 60_000 });
  scope.defer(() => c.dispose());
  for (let i = 0; i < 5; i++) await once(c, LOCAL), await once(c, REMOTE);
  const warm = { local: [], remote: [] };
  for (let i = 0; i < N; i++) {
    const order = i % 2 ? ['remote', 'local'] : ['local', 'remote'];
    for (const k of order) warm[k].push(await once(c, k === 'remote' ? REMOTE : LOCAL));
  }

  const S = {
    local: summary(warm.local),
    remote: summary(warm.remote),
    freshRemote: summary(fresh.remote),
    freshLocal: summary(fresh.local),
  };
  const row = (name, s) => [name, s.n, ms(s.p50), ms(s.p99)];
  const extra = S.remote.p50 - S.local.p50;
  // Per round, the two connects ran back to back: their difference is less exposed to the
  // machine's load drifting during the run than the difference of the two p50s.
  const paired = summary(warm.remote.map((t, i) => t - warm.local[i]));
  const body = [
    '## Interdomain connect against a same-domain one (issue 24)',
    '',
    `Command: \`node bench/interdomain.mjs ${N} --fresh ${FRESH}\` (after \`npm run build\`; part of \`npm run bench\`), ${date()}.`,
    `Machine: ${machine()}, ${await versions(['wireguard-go', 'dnsmasq'])}; load average ${load.map((x) => x.toFixed(1)).join(', ')} at the start.`,
    '',
    "Two hosts (namespaces on a bridge). host-b (domain-b.test) serves the registry and the endpoint; dnsmasq on host-b",
    'answers SRV + A `registry.nsm-system.domain-b.test`. host-a (domain-a.test) uses host-b\'s registry as its own, so',
    '`svc` and `svc@domain-b.test` reach the same registry, endpoint and WireGuard vWire: the difference is the interdomain',
    'path (DNS answer cached for its TTL, the domain\'s registry dialed once and its finds cached like the own registry\'s,',
    'names stripped and restored on both hosts). NSM `Request` on host-a\'s unix socket until the answer (both tunnel ends',
    'made); close not timed. Warm rows: one agent, the two names interleaved round by round. First rows: a fresh host-a',
    'agent each time, its first `svc` (its own registry dialed, its first WireGuard device made), then its first',
    '`svc@domain-b.test` (the DNS lookup, the domain\'s registry dialed and its first find included). Milliseconds:',
    '',
    table(
      ['connect', 'runs', 'p50', 'p99'],
      [
        row('svc (same domain), warm', S.local),
        row('svc@domain-b.test, warm (domain cached)', S.remote),
        row('svc (same domain), first of a fresh agent', S.freshLocal),
        row('svc@domain-b.test, first (domain uncached)', S.freshRemote),
      ],
    ),
    '',
    `Interdomain over same-domain, warm: p50 ${extra >= 0 ? '+' : ''}${ms(extra)} ms; median of the per-round differences ${paired.p50 >= 0 ? '+' : ''}${ms(paired.p50)} ms.`,
    `Target within +1 ms once the domain is cached: ${paired.p50 <= 1 ? 'met' : 'missed'} (by the per-round median).`,
  ].join('\n');
  console.log(body);
  writeSection('interdomain', body);
});
