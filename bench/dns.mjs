// DNS through the agent's resolver in a client namespace (docs/dns.md), against the same
// dnsmasq asked directly. One agent hosts an endpoint whose DNS config names a dnsmasq in the
// endpoint's namespace (172.16.1.100, answering *.my.coredns.service, TTL 60); a client
// namespace is connected to it (`connect --netns`); this process asks from inside the client
// namespace (a UDP socket made there, src/sys nssocket):
//   - latency: one query at a time, a new name each (the agent forwards it) or the same name
//     (the agent answers from its cache), the agent and dnsmasq directly taking turns;
//   - the floor of any forwarding resolver: a second dnsmasq in the client namespace
//     (127.0.0.2, cache off) forwarding to the first, asked in the same rounds;
//   - throughput: WINDOW queries outstanding for SECONDS, new names (forwarded) and the same
//     name (cached), against dnsmasq directly too; answered per second, and queries that got no
//     answer within 1 s (lost);
//   - the agent's RSS before and after;
//   - the memory of the names of 1,000 vL3 members (A, AAAA, PTR) and of a full resolver cache,
//     measured in a child process (--expose-gc): heap used after a collection, before and after.
//
// Usage (root): npm run build && node bench/dns.mjs [--queries 1000] [--seconds 5] [--window 32]
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { ROOT, sleep } from '../test/harness/exec.mjs';
import { args, TAG, summary, ms, f1, mib, table, machine, versions, writeSection, date, mono, rssKiB } from './lib.mjs';
import { main } from './scope.mjs';

const opt = args();
const QUERIES = Number(opt.queries ?? 1000);
const SECONDS = Number(opt.seconds ?? 5);
const WINDOW = Number(opt.window ?? 32);
const NSE = `nsmd${TAG}-e`;
const NSC = `nsmd${TAG}-c`;
const require = createRequire(import.meta.url);
const sys = require(path.join(ROOT, 'dist/sys/index.js'));
const packet = require('dns-packet');

function query(id, name) {
  return packet.encode({ type: 'query', id, flags: packet.RECURSION_DESIRED, questions: [{ type: 'A', class: 'IN', name }] });
}

/** A UDP client in the client namespace: ask(server, name) resolves with the ms to an answer (NOERROR checked). */
async function client(scope) {
  const sock = await sys.udpSocketInNetns(NSC, '0.0.0.0', 0);
  scope.defer(() => sock.close());
  const waiting = new Map();
  let next = 1;
  sock.on('message', (m) => {
    const w = waiting.get(m.readUInt16BE(0));
    if (!w) return;
    waiting.delete(m.readUInt16BE(0));
    w((m[3] & 15) === 0 ? mono() : -1);
  });
  return {
    waiting,
    /** Sends one query; resolves with its latency in ms, or -1 (error rcode, or no answer in 1 s). */
    ask(server, name) {
      const id = next;
      next = (next % 65535) + 1;
      const t0 = mono();
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          waiting.delete(id);
          resolve(-1);
        }, 1000);
        waiting.set(id, (t) => {
          clearTimeout(timer);
          resolve(t < 0 ? -1 : t - t0);
        });
        sock.send(query(id, name), 53, server);
      });
    },
  };
}

/** WINDOW queries outstanding for SECONDS: answered per second and lost. */
async function throughput(c, server, nameOf) {
  const end = mono() + SECONDS * 1000;
  let answered = 0;
  let lost = 0;
  let i = 0;
  const worker = async () => {
    while (mono() < end) {
      const t = await c.ask(server, nameOf(i++));
      if (t < 0) lost++;
      else answered++;
    }
  };
  const t0 = mono();
  await Promise.all(Array.from({ length: WINDOW }, worker));
  return { qps: answered / ((mono() - t0) / 1000), lost };
}

/** Heap bytes held by 1,000 vL3 members' names and by a resolver cache filled to its limit. */
function namesMemory() {
  const script = `
const { MemberNames } = require(${JSON.stringify(path.join(ROOT, 'dist/agent/endpoints/vl3/names-dns.js'))});
const { Forwarder } = require(${JSON.stringify(path.join(ROOT, 'dist/agent/dns/forwarder.js'))});
const packet = require('dns-packet');
const used = () => { gc(); gc(); return process.memoryUsage().heapUsed; };
(async () => {
  const base = used();
  const names = new MemberNames('marshas-app-connectivity');
  for (let i = 0; i < 1000; i++) names.set('conn-' + i, 'member-' + i, ['172.16.' + (i >> 8) + '.' + (i & 255) + '/32', 'fd00::' + i.toString(16) + '/128']);
  const withNames = used();
  const answer = (q) => { const d = packet.decode(q); return packet.encode({ type: 'response', id: d.id, flags: 0x8180, questions: d.questions, answers: [{ type: 'A', name: d.questions[0].name, ttl: 60, data: '172.16.1.100' }] }); };
  const f = new Forwarder({ exchange: async (_s, q) => answer(q), upstreams: () => ({ servers: ['172.16.1.100'], search: [] }) });
  for (let i = 0; i < 1000; i++) await f.answer(packet.encode({ type: 'query', id: i, flags: 256, questions: [{ type: 'A', name: 'n' + i + '.my.coredns.service' }] }));
  const withCache = used();
  console.log(JSON.stringify({ names: withNames - base, cache: withCache - withNames, keep: [names, f].length }));
})();`;
  const r = spawnSync(process.execPath, ['--expose-gc', '-e', script], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`names memory: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

main(async (scope) => {
  const dir = scope.dir('nsmb-dns-');
  for (const n of [NSE, NSC]) await scope.netns(n);
  const agent = await scope.agent({
    dir,
    config: { endpoints: [{ name: 'dns-bench', services: ['dns-bench'], cidr: '172.16.1.100/31', netns: NSE, dns: [{ servers: ['172.16.1.100'], searchDomains: ['my.coredns.service'] }] }] },
  });
  const r = agent.cli(['connect', 'kernel://dns-bench/nsm-1', '--netns', NSC, '--id', 'dns-bench']);
  if (r.code !== 0) throw new Error(`connect: ${r.stderr}`);
  scope.defer(() => agent.cli(['disconnect', 'dns-bench']));
  scope.proc(
    spawn('ip', ['netns', 'exec', NSE, 'dnsmasq', '--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--user=root', '--pid-file=', '--bind-interfaces', '--listen-address=172.16.1.100', '--address=/my.coredns.service/172.16.1.100', '--local-ttl=60'], { stdio: 'ignore' }),
  );
  // a forwarding resolver written in C, where the agent's is: what one more hop costs
  scope.proc(
    spawn('ip', ['netns', 'exec', NSC, 'dnsmasq', '--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--user=root', '--pid-file=', '--bind-interfaces', '--listen-address=127.0.0.2', '--cache-size=0', '--server=172.16.1.100'], { stdio: 'ignore' }),
  );
  const c = await client(scope);
  for (let i = 0; i < 50 && (await c.ask('172.16.1.100', 'up.my.coredns.service')) < 0; i++) await sleep(100);
  for (let i = 0; i < 50 && (await c.ask('127.0.0.2', 'up2.my.coredns.service')) < 0; i++) await sleep(100);
  const rssBefore = rssKiB(agent.pid);

  const lat = { fwd: [], cached: [], direct: [], relay: [] };
  await c.ask('127.0.0.1', 'cached.my.coredns.service');
  for (let i = 0; i < QUERIES; i++) {
    const order = i % 2 ? ['direct', 'relay', 'fwd', 'cached'] : ['fwd', 'cached', 'relay', 'direct'];
    for (const k of order) {
      const t =
        k === 'direct'
          ? await c.ask('172.16.1.100', `l${i}.my.coredns.service`)
          : k === 'relay'
            ? await c.ask('127.0.0.2', `r${i}.my.coredns.service`)
            : k === 'fwd'
              ? await c.ask('127.0.0.1', `f${i}.my.coredns.service`)
              : await c.ask('127.0.0.1', 'cached.my.coredns.service');
      if (t >= 0) lat[k].push(t);
    }
  }
  const tput = {
    fwd: await throughput(c, '127.0.0.1', (i) => `t${i}.my.coredns.service`),
    cached: await throughput(c, '127.0.0.1', () => 'cached.my.coredns.service'),
    direct: await throughput(c, '172.16.1.100', (i) => `d${i}.my.coredns.service`),
  };
  const rssAfter = rssKiB(agent.pid);
  const s = { fwd: summary(lat.fwd), cached: summary(lat.cached), direct: summary(lat.direct), relay: summary(lat.relay) };
  const mem = namesMemory();
  const v = await versions(['dnsmasq']);
  const body = `## DNS resolver in a client namespace (issue 23)

\`node bench/dns.mjs --queries ${QUERIES} --seconds ${SECONDS} --window ${WINDOW}\`, ${date()}, ${machine()}; ${v}.
One agent, an endpoint whose DNS config names a dnsmasq in its namespace, a client namespace
connected to it; queries sent from inside the client namespace (one UDP socket, this process).
"through the agent": to the agent's resolver on 127.0.0.1:53, which asks dnsmasq from inside
the namespace; "cached": the same name again (the agent's cache answers); "direct": to dnsmasq
itself over the vWire. The load generator, the agent and dnsmasq share the host's 2 cores.

${table(
  ['path', 'p50 ms', 'p99 ms', `answered/s (${WINDOW} outstanding)`, 'lost'],
  [
    ['through the agent, a new name each', ms(s.fwd.p50), ms(s.fwd.p99), f1(tput.fwd.qps), String(tput.fwd.lost)],
    ['through the agent, cached', ms(s.cached.p50), ms(s.cached.p99), f1(tput.cached.qps), String(tput.cached.lost)],
    ['dnsmasq directly', ms(s.direct.p50), ms(s.direct.p99), f1(tput.direct.qps), String(tput.direct.lost)],
    ['dnsmasq forwarding to it (cache off)', ms(s.relay.p50), ms(s.relay.p99), '', ''],
  ],
)}

Forwarded p50 over direct p50: ${(s.fwd.p50 / s.direct.p50).toFixed(2)}x (target <= 1.5x); dnsmasq forwarding in the same
place: ${(s.relay.p50 / s.direct.p50).toFixed(2)}x direct, the agent ${(s.fwd.p50 / s.relay.p50).toFixed(2)}x of it; cached p50 over direct p50:
${(s.cached.p50 / s.direct.p50).toFixed(2)}x. A forwarded query takes two hops more than a direct one (client to resolver,
resolver to dnsmasq and back, back to the client: four process wake-ups, not two), whatever
the resolver is written in; the forwarding dnsmasq row measures that floor. Answers per
second: target >= 5,000 on one core (the agent runs on one thread). Agent RSS
${mib(rssBefore)} MiB before, ${mib(rssAfter)} MiB after the runs (heap grown by the load). Memory with 1,000
members: their names (A, AAAA and PTR of a vL3 endpoint's name server) hold ${(mem.names / 1024).toFixed(0)} KiB of heap, a
resolver cache full at its 1,000 answers ${(mem.cache / 1024).toFixed(0)} KiB.
`;
  console.log(body);
  writeSection('dns', body);
});
