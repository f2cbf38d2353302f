// A/B local connect: two agents side by side, each with its own endpoint namespace, one client
// namespace; connects alternate between them run by run (order swapped every run), so the
// machine's noise hits both alike. Used for the before/after figures of BENCHMARKS.md
// (connect-local): the agents may come from two trees (BINA / BINB) or differ by environment
// (ENVA / ENVB, JSON objects). --spawn runs `ip link show lo` after each connect, as the
// connect-local bench's iproute2 runs leave the agents idle between connects. --compiled asks
// with the compiled client (floor/grpc-call.c, timed inside it) instead of grpc-js: the agent's own
// latency, without the grpc-js client's noise.
//
// Usage (root): BINA=/old/tree/bin/nsm-agent [BINB=...] node bench/ab-connect.mjs [runs] [--spawn] [--compiled]
import { ip } from '../test/harness/exec.mjs';
import { BIN } from '../test/harness/agent.mjs';
import { NsmClient, kernelRequest } from '../test/harness/clients.mjs';
import { summary, ms, TAG, args } from './lib.mjs';
import { main, compileC } from './scope.mjs';
import { cNsClient } from './clients.mjs';

const opt = args();
const N = Number(opt._[0] ?? 200);
const WARM = 20;
const side = {
  a: { bin: process.env.BINA ?? BIN, env: JSON.parse(process.env.ENVA ?? '{}') },
  b: { bin: process.env.BINB ?? BIN, env: JSON.parse(process.env.ENVB ?? '{}') },
};
const NSC = `nsmab${TAG}-c`;

async function startAgent(scope, dir, name) {
  const nse = await scope.netns(`nsmab${TAG}-${name}`);
  const cidr = name === 'a' ? '10.200.0.0/16' : '10.210.0.0/16';
  const endpoints = [{ name: 'bench', services: ['bench'], cidr, netns: nse, payload: 'IP' }];
  const agent = await scope.agent({ dir, name, config: { endpoints }, bin: side[name].bin, env: { ...process.env, ...side[name].env } });
  return agent.socket;
}

main(async (scope) => {
  const dir = scope.dir('nsmab-');
  await scope.netns(NSC);
  const agents = [];
  const callBin = opt.compiled ? await compileC(scope, 'grpc-call', ['nghttp2']) : undefined;
  for (const name of ['a', 'b']) {
    const socket = await startAgent(scope, dir, name);
    const c = new NsmClient(socket, { timeoutMs: 60_000 });
    scope.defer(() => c.dispose());
    agents.push({ name, c, cc: callBin && cNsClient(scope, callBin, socket), xs: [] });
  }
  for (let i = 0; i < N + WARM; i++) {
    for (const g of i % 2 ? agents : [...agents].reverse()) {
      let conn, t;
      if (g.cc) ({ conn, ms: t } = await g.cc.request(`${g.name}-${i}`, 'bench', NSC, `${g.name}${i}`));
      else {
        const t0 = performance.now();
        conn = await g.c.request(kernelRequest(`${g.name}-${i}`, 'bench', NSC, `${g.name}${i}`));
        t = performance.now() - t0;
      }
      if (i >= WARM) g.xs.push(t);
      await g.c.close(conn);
      if (opt.spawn) await ip(['link', 'show', 'lo']);
    }
  }
  const [A, B] = agents.map((g) => summary(g.xs));
  console.log(`A (${side.a.bin}) p50 ${ms(A.p50)} p99 ${ms(A.p99)} | B (${side.b.bin}) p50 ${ms(B.p50)} p99 ${ms(B.p99)} | B/A p50 ${(B.p50 / A.p50).toFixed(3)}`);
});
