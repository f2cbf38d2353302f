// Registry at scale: an agent with the embedded registry, once with the memory store and
// once with the etcd store (a throwaway etcd on loopback), both running side by side.
//   Register: N (default 10,000) NSEs over the registry gRPC API on the agent's unix socket, 16 in
//     flight; latency of each call.
//   Find (no watch), calls alternating between the two agents: by NSE name (one result), and by
//     network service (N/100 results each: 100 services).
//   Watch fan-out: W (default 100) watchers (Find with watch) on one service; then one new NSE of
//     that service registered at a time, until every watcher has seen it.
//   Memory: agent VmRSS before, after registering, with the watchers.
//
// Usage (root): npm run build && node bench/registry.mjs [--endpoints N] [--watchers W] [--finds F]
import { sleep } from '../test/harness/exec.mjs';
import { registryClient } from '../test/harness/clients.mjs';
import { args, rssKiB, mono, summary, ms, table, machine, versions, writeSection, date, mib, f1 } from './lib.mjs';
import { main } from './scope.mjs';

const opt = args();
const N = Number(opt.endpoints ?? 10000);
const W = Number(opt.watchers ?? 100);
const F = Number(opt.finds ?? 200);
const FAN = Number(opt.events ?? 20);
const SERVICES = 100;

const nse = (i, svc = `svc-${i % SERVICES}`) => ({
  name: `nse-${i}`,
  network_service_names: [svc],
  network_service_labels: { [svc]: { labels: { app: 'bench', zone: `z${i % 7}` } } },
  url: `tcp://10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:5001`,
});

async function timed(fn) {
  const t0 = mono();
  await fn();
  return mono() - t0;
}

main(async (scope) => {
  const dir = scope.dir('nsmg-');
  const etcd = await scope.etcd();
  const stores = {
    memory: await scope.agent({ dir, name: 'reg-mem', config: { registry: { url: 'embedded', store: 'memory', expiration: '2h' } } }),
    etcd: await scope.agent({ dir, name: 'reg-etcd', config: { registry: { url: 'embedded', store: 'etcd', etcd: [etcd], expiration: '2h' } } }),
  };
  const names = Object.keys(stores);
  const cl = Object.fromEntries(names.map((s) => [s, registryClient(stores[s].socket)]));
  scope.defer(() => Object.values(cl).forEach((c) => c.dispose()));
  await sleep(500);
  const R = Object.fromEntries(names.map((s) => [s, { rss0: rssKiB(stores[s].pid), reg: [], byName: [], bySvc: [], fan: [] }]));

  // Register, the two stores in turns of 500
  for (let from = 0; from < N; from += 500) {
    for (const s of names) {
      let next = from;
      const to = Math.min(N, from + 500);
      const t0 = mono();
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (next < to) {
            const i = next++;
            R[s].reg.push(await timed(() => cl[s].register(nse(i))));
          }
        }),
      );
      R[s].regTotal = (R[s].regTotal ?? 0) + (mono() - t0);
    }
  }
  for (const s of names) R[s].rssReg = rssKiB(stores[s].pid);

  // Find, alternating
  for (let k = 0; k < F; k++) {
    for (const s of k % 2 ? [...names].reverse() : names) {
      const i = (k * 7919) % N;
      let res;
      R[s].byName.push(await timed(async () => (res = await cl[s].find({ name: `nse-${i}` }))));
      if (res.length !== 1) throw new Error(`${s}: find by name gave ${res.length}`);
      R[s].bySvc.push(await timed(async () => (res = await cl[s].find({ network_service_names: [`svc-${k % SERVICES}`] }))));
      if (res.length < Math.floor(N / SERVICES)) throw new Error(`${s}: find by service gave ${res.length}`);
    }
  }

  // Watch fan-out (a store whose watchers do not all subscribe within 60 s is reported as such)
  for (const s of names) {
    try {
      await fanOut(s);
    } catch (err) {
      R[s].fanError = err.message;
      console.error(err.message);
    }
  }
  async function fanOut(s) {
    const seen = new Map(); // name -> count of watchers that saw it
    const waiters = new Map();
    const calls = Array.from({ length: W }, () =>
      cl[s].watch({ network_service_names: ['fan'] }, (d) => {
        const n = d.network_service_endpoint?.name;
        const c = (seen.get(n) ?? 0) + 1;
        seen.set(n, c);
        if (c === W) waiters.get(n)?.();
      }),
    );
    const all = (name) => new Promise((resolve) => (seen.get(name) === W ? resolve() : waiters.set(name, resolve)));
    // every watcher is subscribed once it has seen a first event
    await cl[s].register(nse(N + 1, 'fan'));
    const t0 = mono();
    await Promise.race([all(`nse-${N + 1}`), sleep(60_000).then(() => { for (const c of calls) c.cancel(); throw new Error(`${W} watchers did not all subscribe within 60 s (${seen.get(`nse-${N + 1}`) ?? 0} did)`); })]);
    R[s].subscribeMs = mono() - t0;
    for (let k = 0; k < FAN; k++) {
      const name = `nse-${N + 10 + k}`;
      const done = all(name);
      R[s].fan.push(await timed(async () => (await cl[s].register(nse(N + 10 + k, 'fan')), await done)));
    }
    R[s].rssWatch = rssKiB(stores[s].pid);
    for (const c of calls) c.cancel();
  }
  const watchersNote = names.filter((s) => R[s].fanError).map((s) => `${s}: ${R[s].fanError}`);

  const S = Object.fromEntries(names.map((s) => [s, { reg: summary(R[s].reg), byName: summary(R[s].byName), bySvc: summary(R[s].bySvc), fan: summary(R[s].fan) }]));
  const row = (what, key) => [what, ...names.flatMap((s) => [ms(S[s][key].p50), ms(S[s][key].p99)])];
  const body = [
    '## Registry at scale',
    '',
    `Command: \`node bench/registry.mjs --endpoints ${N} --watchers ${W} --finds ${F}\` (after \`npm run build\`; part of \`npm run bench\`), ${date()}.`,
    `Machine: ${machine()}, ${await versions(['etcd'])} (single node on loopback, heartbeat 10 ms).`,
    '',
    `Two agents side by side, each with the embedded registry: one on the memory store, one on the etcd store. ${N} NSEs`,
    `(${SERVICES} services, labels) registered over the registry gRPC API on the agent's unix socket, 16 calls in flight, the two`,
    `agents in turns of 500. Find (no watch) calls alternate between the agents: by NSE name (1 result) and by network service`,
    `(${Math.floor(N / SERVICES)} results, until the stream ends). Fan-out: ${W} watchers (Find with watch) on one service, then one new NSE`,
    `of that service at a time (${FAN} times), from Register sent until every watcher has received it. Milliseconds:`,
    '',
    table(
      ['operation', ...names.flatMap((s) => [`${s} p50`, `${s} p99`])],
      [
        row(`Register (${N}, 16 in flight)`, 'reg'),
        row(`Find by name, ${N} registered`, 'byName'),
        row(`Find by service (${Math.floor(N / SERVICES)} results)`, 'bySvc'),
        row(`watch fan-out to ${W} watchers`, 'fan'),
      ],
    ),
    '',
    table(
      ['store', `register ${N} (total)`, 'agent RSS before', `with ${N} NSEs`, `with ${W} watchers`],
      names.map((s) => [s, `${f1(R[s].regTotal / 1000)} s`, `${mib(R[s].rss0)} MiB`, `${mib(R[s].rssReg)} MiB`, R[s].rssWatch ? `${mib(R[s].rssWatch)} MiB` : '-']),
    ),
    '',
    `Time until all ${W} watchers were subscribed (each Find with watch first sends the current matches): ${names.map((s) => `${s} ${R[s].subscribeMs ? `${f1(R[s].subscribeMs / 1000)} s` : 'not within 60 s'}`).join(', ')}.`,
    ...(watchersNote.length ? ['', `Fan-out not measured: ${watchersNote.join('; ')}.`] : []),
    '',
    `Target Find p50 under 2 ms at ${N} endpoints: memory ${S.memory.byName.p50 < 2 ? 'met' : 'missed'} (${ms(S.memory.byName.p50)} ms by name), etcd ${S.etcd.byName.p50 < 2 ? 'met' : 'missed'} (${ms(S.etcd.byName.p50)} ms by name).`,
  ].join('\n');
  console.log(body);
  writeSection('registry', body);
});
