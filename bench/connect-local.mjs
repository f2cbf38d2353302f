// Local connect latency: a running agent, a raw NSM client on its unix socket
// requesting kernel://bench/<if> for a client namespace (veth to the endpoint's namespace,
// /32 addresses, link routes, permanent neighbours on both sides), against two floors doing
// the same interface work:
//   iproute2: ip link add A netns C type veth peer name B netns E (+ one `ip -n X -batch -` per side)
//   raw netlink: bench/floor/veth-floor.c (compiled here with cc), the same requests as the agent
//     with no library, batched per socket: the physical limit of this work on this kernel.
// The agent is asked three times over: by a grpc-js client; by a client without a gRPC library
// (node:http2, clients.mjs h2NsClient), whose own per-call work is smaller; and by a compiled client
// (bench/floor/grpc-call.c, libnghttp2), whose own work is a few microseconds, as NSM's Go
// clients': the agent's own latency. Two floors of the call itself, with no work behind it:
// bench/floor/h2-floor.mjs (node:http2 server, asked by the node:http2 client) and
// bench/floor/grpc-floor.mjs (grpc-js server built as the agent's, asked by the compiled client).
// Sequential: the seven paths take turns run by run (each agent connect after a floor's, the
// clients rotating places), so background noise hits all alike. Concurrent: N at once, ROUNDS rounds, interleaved. Connects timed, teardown not.
//
// Usage (root): npm run build && node bench/connect-local.mjs [runs] [--concurrent N] [--rounds R]
import path from 'node:path';
import { ip } from '../test/harness/exec.mjs';
import { NsmClient, api, kernelRequest } from '../test/harness/clients.mjs';
import { args, summary, ms, table, machine, writeSection, TAG, versions, date } from './lib.mjs';
import { main, compileC } from './scope.mjs';
import { h2NsClient, cNsClient } from './clients.mjs';

const opt = args();
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
  const callBin = await compileC(scope, 'grpc-call', ['nghttp2']);
  for (const n of [NSE, NSC]) await scope.netns(n);
  const agent = await scope.agent({
    dir,
    config: { endpoints: [{ name: 'bench', services: ['bench'], cidr: '10.200.0.0/16', netns: NSE, payload: 'IP' }] },
  });
  const floor = scope.lineProc(floorBin, [`/run/netns/${NSC}`, `/run/netns/${NSE}`]);
  const fl = async (cmd) => {
    const line = await floor.send(cmd);
    if (line.startsWith('error')) throw new Error(`veth-floor ${cmd}: ${line}`);
    return line;
  };

  const c = new NsmClient(agent.socket, { timeoutMs: 60_000 });
  scope.defer(() => c.dispose());
  const h2 = h2NsClient(agent.socket);
  scope.defer(() => h2.dispose());

  // The floors of the call: servers answering at once with the agent's own answer.
  const sample = await c.request(kernelRequest('sample', 'bench', NSC, 'sample0'));
  await c.close(sample);
  const answerHex = api().ns.networkservice.NetworkService.service.Request.responseSerialize(sample).toString('hex');
  /** Starts floor/<name>.mjs on its own socket; resolves with the socket once it serves. */
  const startFloor = async (name) => {
    const socket = path.join(dir, `${name}.sock`);
    const proc = scope.lineProc(process.execPath, [new URL(`./floor/${name}.mjs`, import.meta.url).pathname, socket]);
    const ready = await proc.send(answerHex);
    if (ready !== 'ready') throw new Error(`${name}: ${ready}`);
    return socket;
  };
  // node:http2 with no grpc-js, asked by the node:http2 client
  const h2f = h2NsClient(await startFloor('h2-floor'));
  scope.defer(() => h2f.dispose());
  // the agent's grpc-js server with nothing behind it, asked by the compiled client
  const grpcFloorSocket = await startFloor('grpc-floor');
  const cc = cNsClient(scope, callBin, agent.socket);
  const cgf = cNsClient(scope, callBin, grpcFloorSocket);
  const conns = new Map();
  const paths = {
    agent: {
      connect: async (i) => conns.set(i, await c.request(kernelRequest(`b-${i}`, 'bench', NSC, `b${i}`))),
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
    // timed inside the compiled client, as the C floor is
    'agent-c': {
      connect: async (i) => {
        const { conn, ms: t } = await cc.request(`k-${i}`, 'bench', NSC, `k${i}`);
        conns.set(`k${i}`, conn);
        return t;
      },
      disconnect: async (i) => {
        await c.close(conns.get(`k${i}`));
        conns.delete(`k${i}`);
      },
    },
    'h2-floor': { connect: (i) => h2f.request(`f-${i}`, 'bench', NSC, `f${i}`), disconnect: async () => {} },
    'grpc-floor': { connect: async (i) => (await cgf.request(`g-${i}`, 'bench', NSC, `g${i}`)).ms, disconnect: async () => {} },
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

  // Each agent connect follows a floor's run, never another client's (which would leave the
  // agent's code warm); the three clients rotate places every run. The floors' servers sit idle
  // as long between their calls as the agent between its.
  const clients = ['agent', 'agent-h2', 'agent-c'];
  const order = (i) => {
    const [x, y, z] = [0, 1, 2].map((k) => clients[(i + k) % 3]);
    return [x, 'iproute2', y, 'raw', z, 'h2-floor', 'grpc-floor'];
  };
  const selfTimed = new Set(['raw', 'agent-c', 'grpc-floor']); // connect() resolves with its own time
  const seq = Object.fromEntries(names.map((p) => [p, []]));
  for (let i = 0; i < N; i++) {
    for (const p of order(i)) {
      const t = selfTimed.has(p) ? await paths[p].connect(i) : await timed(() => paths[p].connect(i));
      seq[p].push(t);
      await paths[p].disconnect(i);
    }
  }

  // concurrent: the grpc-js client only
  const concNames = ['agent', 'iproute2', 'raw'];
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
    '(veth pair between the client and endpoint namespaces, /32 addresses, link routes, permanent',
    'neighbours on both sides). The agent is asked by three clients, same bytes on the wire:',
    "- a compiled client, `bench/floor/grpc-call.c` (libnghttp2, timed inside the program from the request's first byte to the",
    "  answer's trailers; the message serialized and the answer deserialized outside the timing): a client whose own",
    "  per-call work is a few microseconds, as NSM's Go clients': the agent's own latency;",
    '- a client without a gRPC library: node:http2, the request serialized and the answer checked and deserialized inside',
    '  the timing;',
    '- a grpc-js client (channel, interceptors, call stack: the most per-call work of the three).',
    '',
    'Against the same interface work',
    '- with the fewest iproute2 calls (`ip link add … netns C type veth peer … netns E`, then one `ip -n X -batch -` per side, in parallel);',
    '- by `bench/floor/veth-floor.c`: the same netlink requests as the agent (NEWLINK with both ends, SETLINK up and GETLINK',
    '  of the peer, GETLINK, then NEWADDR, NEWROUTE, NEWNEIGH per side) from C with no library, one `sendmsg` per socket and',
    '  phase, sockets opened once inside each namespace, timed inside the program: the physical limit of this work.',
    '',
    'And two floors of the call itself, answering every call at once with the agent\'s own answer, no work behind it:',
    "- `bench/floor/grpc-floor.mjs`: a grpc-js server built as the agent's (its service definition and server options), asked",
    "  by the compiled client: what the agent's gRPC server costs per unary call before its handler starts;",
    '- `bench/floor/h2-floor.mjs`: a node:http2 server (no grpc-js), asked by the node:http2 client: the Node HTTP/2 round trip.',
    '',
    `Sequential: the seven take turns run by run (each agent connect after a floor's; the three clients rotate places every run; the floors' servers idle between calls as the agent does). Concurrent (grpc-js client): ${CONC} at once, ${ROUNDS} interleaved rounds`,
    '(the C floor sends each phase for all pairs in one `sendmsg`; its latency is when a pair\'s last reply was read).',
    'Agent warm; teardown not timed. Milliseconds:',
    '',
    table(
      ['path', 'runs', 'p50', 'p99'],
      [
        row('agent, compiled client, sequential', S['agent-c']),
        row('agent, node:http2 client, sequential', S['agent-h2']),
        row('agent, grpc-js client, sequential', S.agent),
        row('iproute2, sequential', S.iproute2),
        row('raw netlink (C), sequential', S.raw),
        row('grpc-js server, nothing behind it, compiled client, sequential', S['grpc-floor']),
        row('node:http2 round trip, nothing behind it, sequential', S['h2-floor']),
        row(`agent, grpc-js client, ${CONC} concurrent`, SC.agent),
        row(`iproute2, ${CONC} concurrent`, SC.iproute2),
        row(`raw netlink (C), ${CONC} batched`, SC.raw),
      ],
    ),
    '',
    `Ratios at p50, sequential. Agent / raw netlink (target <= 5): ${r2(S['agent-c'].p50, S.raw.p50)} with the compiled client, ${r2(S['agent-h2'].p50, S.raw.p50)} with the node:http2 client, ${r2(S.agent.p50, S.raw.p50)} with the grpc-js client.`,
    `Agent / iproute2 (target <= 0.5): ${r2(S['agent-c'].p50, S.iproute2.p50)}, ${r2(S['agent-h2'].p50, S.iproute2.p50)} and ${r2(S.agent.p50, S.iproute2.p50)}.`,
    `The call alone, with nothing behind it: the agent's grpc-js server ${r2(S['grpc-floor'].p50, S.raw.p50)} x raw netlink (${ms(S['grpc-floor'].p50)} ms of the agent's ${ms(S['agent-c'].p50)} with the same client); the Node HTTP/2 round trip ${r2(S['h2-floor'].p50, S.raw.p50)} x (${ms(S['h2-floor'].p50)} ms of the agent's ${ms(S['agent-h2'].p50)} with the same client).`,
    `Concurrent: agent / iproute2 ${r2(SC.agent.p50, SC.iproute2.p50)}, agent / raw netlink ${r2(SC.agent.p50, SC.raw.p50)}. Target p50 < 5 ms: ${S.agent.p50 < 5 ? 'met' : 'missed'} (${ms(S.agent.p50)} ms with the grpc-js client).`,
  ].join('\n');
  console.log(body);
  writeSection('connect-local', body);
});
