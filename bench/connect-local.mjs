// Local connect latency (issues 2 and 7): a running agent, a raw NSM client on its unix socket
// requesting kernel://bench/<if> for a client namespace (veth to the endpoint's namespace,
// /32 addresses, link routes, permanent neighbours on both sides), against two floors doing
// the same interface work:
//   iproute2: ip link add A netns C type veth peer name B netns E (+ one `ip -n X -batch -` per side)
//   raw netlink: bench/floor/veth-floor.c (compiled here with cc), the same requests as the agent
//     with no library, batched per socket: the physical limit of this work on this kernel.
// The agent is asked twice over: by a grpc-js client, and by a client without a gRPC library
// (node:http2, lib.mjs h2NsClient), whose own per-call work is far smaller (as a Go client's).
// That client also asks bench/floor/h2-floor.mjs, a node:http2 server answering at once with the
// agent's answer: the Node HTTP/2 floor of the call itself, with no work behind it.
// Sequential: the five paths take turns run by run (each agent connect after a floor's, the
// clients swapping places), so background noise hits all alike. Concurrent: N at once, ROUNDS rounds, interleaved. Connects timed, teardown not.
//
// Usage (root): npm run build && node bench/connect-local.mjs [runs] [--concurrent N] [--rounds R]
import path from 'node:path';
import { summary, ms, table, machine, writeSection, main, sh, ip, compileC, lineProc, startAgent, nsClient, h2NsClient, TAG, versions, date, ROOT } from './lib.mjs';

const opt = (await import('./lib.mjs')).args();
const N = Number(opt._[0] ?? 200);
const CONC = Number(opt.concurrent ?? N);
const ROUNDS = Number(opt.rounds ?? 3);
const NSE = `nsmb${TAG}-nse`;
const NSC = `nsmb${TAG}-nsc`;

function mac(i, side) {
  return `02:${side}:00:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
}

/** The same interface work as the agent's KERNEL mechanism, with the fewest iproute2 calls. */
async function iprouteConnect(i) {
  const c = `10.201.${i >> 8}.${i & 255}`; // client side
  const e = `10.202.${i >> 8}.${i & 255}`; // endpoint side
  const ca = `i${i}`;
  const ea = `j${i}`;
  await ip(['link', 'add', ca, 'address', mac(i, 'aa'), 'netns', NSC, 'type', 'veth', 'peer', 'name', ea, 'address', mac(i, 'bb'), 'netns', NSE]);
  await Promise.all([
    ip(['-n', NSC, '-batch', '-'], `addr add ${c}/32 dev ${ca}\nlink set ${ca} up\nroute add ${e}/32 dev ${ca} scope link\nneigh replace ${e} lladdr ${mac(i, 'bb')} dev ${ca} nud permanent\n`),
    ip(['-n', NSE, '-batch', '-'], `addr add ${e}/32 dev ${ea}\nlink set ${ea} up\nroute add ${c}/32 dev ${ea} scope link\nneigh replace ${c} lladdr ${mac(i, 'aa')} dev ${ea} nud permanent\n`),
  ]);
}
const iprouteDisconnect = (i) => ip(['-n', NSC, 'link', 'del', `i${i}`]);

async function timed(fn) {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

main(async (scope) => {
  const dir = scope.dir('nsmb-');
  const floorBin = await compileC(scope, 'veth-floor');
  for (const n of [NSE, NSC]) await scope.netns(n);
  const agent = await startAgent(scope, {
    dir,
    config: { endpoints: [{ name: 'bench', services: ['bench'], cidr: '10.200.0.0/16', netns: NSE, payload: 'IP' }] },
  });
  const floor = lineProc(scope, floorBin, [`/run/netns/${NSC}`, `/run/netns/${NSE}`]);
  const fl = async (cmd) => {
    const line = await floor.send(cmd);
    if (line.startsWith('error')) throw new Error(`veth-floor ${cmd}: ${line}`);
    return line;
  };

  const c = nsClient(agent.socket);
  scope.defer(() => c.dispose());
  const h2 = h2NsClient(agent.socket);
  scope.defer(() => h2.dispose());

  // The Node HTTP/2 floor (floor/h2-floor.mjs): answers with the agent's own answer, at once.
  const { api } = (await import('node:module')).createRequire(import.meta.url)(`${ROOT}dist/api/index.js`);
  const sample = await c.request('sample', 'bench', NSC, 'sample0');
  await c.close(sample);
  const h2floorSocket = path.join(dir, 'h2-floor.sock');
  const h2floor = lineProc(scope, process.execPath, [new URL('./floor/h2-floor.mjs', import.meta.url).pathname, h2floorSocket]);
  const ready = await h2floor.send(api().ns.networkservice.NetworkService.service.Request.responseSerialize(sample).toString('hex'));
  if (ready !== 'ready') throw new Error(`h2-floor: ${ready}`);
  const h2f = h2NsClient(h2floorSocket);
  scope.defer(() => h2f.dispose());
  const conns = new Map();
  const paths = {
    agent: {
      connect: async (i) => conns.set(i, await c.request(`b-${i}`, 'bench', NSC, `b${i}`)),
      disconnect: async (i) => {
        await c.close(conns.get(i));
        conns.delete(i);
      },
    },
    'agent-h2': {
      connect: async (i) => conns.set(-1 - i, await h2.request(`h-${i}`, 'bench', NSC, `h${i}`)),
      disconnect: async (i) => {
        await c.close(conns.get(-1 - i));
        conns.delete(-1 - i);
      },
    },
    'h2-floor': { connect: (i) => h2f.request(`f-${i}`, 'bench', NSC, `f${i}`), disconnect: async () => {} },
    iproute2: { connect: iprouteConnect, disconnect: iprouteDisconnect },
    raw: {
      // timed inside the C program (no pipe round trip): the floor itself
      connect: async (i) => Number(await fl(`c ${i}`)) / 1000,
      disconnect: (i) => fl(`d ${i}`),
    },
  };
  const names = Object.keys(paths);
  // warm up every path
  for (let i = 0; i < 10; i++) for (const p of names) await paths[p].connect(i), await paths[p].disconnect(i);

  // Each agent connect follows a floor's run, never the other client's (which would leave the
  // agent's code warm); the two clients swap places every run. The HTTP/2 floor's server sits
  // idle as long between its calls as the agent between its.
  const order = [
    ['agent', 'iproute2', 'agent-h2', 'raw', 'h2-floor'],
    ['agent-h2', 'iproute2', 'agent', 'raw', 'h2-floor'],
  ];
  const seq = Object.fromEntries(names.map((p) => [p, []]));
  for (let i = 0; i < N; i++) {
    for (const p of order[i % 2]) {
      const t = p === 'raw' ? await paths.raw.connect(i) : await timed(() => paths[p].connect(i));
      seq[p].push(t);
      await paths[p].disconnect(i);
    }
  }

  // concurrent: the grpc-js client only
  const concNames = names.filter((p) => p !== 'agent-h2' && p !== 'h2-floor');
  const conc = Object.fromEntries(concNames.map((p) => [p, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (let k = 0; k < concNames.length; k++) {
      const p = concNames[(r + k) % concNames.length];
      if (p === 'raw') {
        conc.raw.push(...(await fl(`C ${CONC}`)).split(' ').map((x) => Number(x) / 1000));
        await fl(`D ${CONC}`);
        continue;
      }
      conc[p].push(...(await Promise.all(Array.from({ length: CONC }, (_, i) => timed(() => paths[p].connect(i))))));
      await Promise.all(Array.from({ length: CONC }, (_, i) => paths[p].disconnect(i)));
    }
  }

  const S = Object.fromEntries(names.map((p) => [p, summary(seq[p])]));
  const SC = Object.fromEntries(concNames.map((p) => [p, summary(conc[p])]));
  const row = (name, s) => [name, s.n, ms(s.p50), ms(s.p99)];
  const r2 = (a, b) => (a / b).toFixed(2);
  const body = [
    '## Local connect latency against the kernel floors (issues 2 and 7)',
    '',
    `Command: \`node bench/connect-local.mjs ${N}${CONC !== N ? ` --concurrent ${CONC}` : ''}${ROUNDS !== 3 ? ` --rounds ${ROUNDS}` : ''}\` (after \`npm run build\`; part of \`npm run bench\`), ${date()}.`,
    `Machine: ${machine()}, ${await versions(['cc'])}.`,
    '',
    "One connect = NSM `Request` over the agent's unix socket for `kernel://bench/<if>` until the answer",
    '(asked by a grpc-js client, and by a client without a gRPC library: node:http2, the request serialized and the',
    "answer checked and deserialized inside the timing, as a Go client's would be; same bytes on the wire)",
    '(veth pair between the client and endpoint namespaces, /32 addresses, link routes, permanent',
    'neighbours on both sides), against the same work',
    '- with the fewest iproute2 calls (`ip link add … netns C type veth peer … netns E`, then one `ip -n X -batch -` per side, in parallel);',
    '- by `bench/floor/veth-floor.c`: the same netlink requests as the agent (NEWLINK with both ends, SETLINK up and GETLINK',
    '  of the peer, GETLINK, then NEWADDR, NEWROUTE, NEWNEIGH per side) from C with no library, one `sendmsg` per socket and',
    '  phase, sockets opened once inside each namespace, timed inside the program: the physical limit of this work.',
    '',
    'And the Node HTTP/2 floor of the call itself: `bench/floor/h2-floor.mjs`, a node:http2 server answering every call at once',
    "with the agent's own answer (no grpc-js, no work behind it), asked by the node:http2 client: what any Node gRPC service",
    'pays per unary call on this host before its handler starts.',
    '',
    `Sequential: the five take turns run by run (each agent connect after a floor's; the two clients swap places every run; the HTTP/2 floor's server idles between calls as the agent does). Concurrent (grpc-js client): ${CONC} at once, ${ROUNDS} interleaved rounds`,
    '(the C floor sends each phase for all pairs in one `sendmsg`; its latency is when a pair\'s last reply was read).',
    'Agent warm; teardown not timed. Milliseconds:',
    '',
    table(
      ['path', 'runs', 'p50', 'p99'],
      [
        row('agent, sequential', S.agent),
        row('agent, node:http2 client, sequential', S['agent-h2']),
        row('iproute2, sequential', S.iproute2),
        row('raw netlink (C), sequential', S.raw),
        row('node:http2 round trip, nothing behind it, sequential', S['h2-floor']),
        row(`agent, ${CONC} concurrent`, SC.agent),
        row(`iproute2, ${CONC} concurrent`, SC.iproute2),
        row(`raw netlink (C), ${CONC} batched`, SC.raw),
      ],
    ),
    '',
    `Ratios at p50, sequential: agent / iproute2 ${r2(S.agent.p50, S.iproute2.p50)} (target <= 0.5), agent / raw netlink ${r2(S.agent.p50, S.raw.p50)} (target <= 5);`,
    `with the node:http2 client: agent / iproute2 ${r2(S['agent-h2'].p50, S.iproute2.p50)}, agent / raw netlink ${r2(S['agent-h2'].p50, S.raw.p50)};`,
    `the Node HTTP/2 round trip alone: ${r2(S['h2-floor'].p50, S.raw.p50)} x raw netlink (${ms(S['h2-floor'].p50)} ms of the agent's ${ms(S['agent-h2'].p50)} with the same client);`,
    `concurrent: agent / iproute2 ${r2(SC.agent.p50, SC.iproute2.p50)}, agent / raw netlink ${r2(SC.agent.p50, SC.raw.p50)}. Target p50 < 5 ms: ${S.agent.p50 < 5 ? 'met' : 'missed'} (${ms(S.agent.p50)} ms).`,
  ].join('\n');
  console.log(body);
  writeSection('connect-local', body);
});
