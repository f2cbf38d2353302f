// SPDX-License-Identifier: Apache-2.0
// Latency of the src/sys kernel primitives on the local-connect path.
//
// Usage (root): npm run build:native && npm run build && node bench/sys-primitives.mjs [runs]
//   SETTLE_MS=20 pauses after each teardown (see below).
//   NSM_SYS=/path/to/compiled/sys/index.js overrides where the compiled src/sys is
//   loaded from, e.g. to compile only src/sys (what the reported numbers used):
//     npx tsc --outDir /tmp/sysbuild --rootDir . --target ES2022 --module commonjs \
//       --moduleResolution node --strict --esModuleInterop --skipLibCheck --types node src/sys/index.ts
//     NODE_PATH=$PWD/node_modules NSM_NATIVE_ADDON=$PWD/native/build/Release/nsm_native.node \
//       NSM_SYS=/tmp/sysbuild/src/sys/index.js node bench/sys-primitives.mjs 200
//
// Two namespaces stand in for the client's and the endpoint's (they already
// exist when a connect arrives). One "connect" = what the kernel mechanism
// does for a local vWire:
//   createVethPair (both ends up, MTU, fixed MACs, one end per namespace)
//   + per side: IPv4 and IPv6 address (IPv6 nodad), IPv4 link-scope host route
//     to the peer, IPv4 onlink route via the peer, IPv6 host route to the peer,
//     permanent IPv4 and IPv6 neighbours for the peer.
// All per-side requests are issued concurrently (each is one netlink request
// on that namespace's cached socket). Teardown (deleteLink) is timed apart.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const sys = require(process.env.NSM_SYS ?? fileURLToPath(new URL('../dist/sys/index.js', import.meta.url)));

const runs = Number(process.argv[2] ?? 200);
const warmup = 20;
// Optional pause after each teardown, to keep the kernel's deferred veth
// cleanup (RCU, workqueues) out of the next measurement: SETTLE_MS=20.
const settleMs = Number(process.env.SETTLE_MS ?? 0);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function stats(samples) {
  const s = [...samples].sort((x, y) => x - y);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { n: s.length, median: q(0.5), p90: q(0.9), p99: q(0.99), min: s[0], max: s[s.length - 1] };
}
function show(name, samples, unit = 'ms') {
  const r = stats(samples);
  const f = (v) => (unit === 'us' ? (v * 1000).toFixed(1) : v.toFixed(3));
  console.log(
    `${name.padEnd(34)} n=${String(r.n).padStart(4)}  median ${f(r.median)} ${unit}  p90 ${f(r.p90)}  p99 ${f(r.p99)}  min ${f(r.min)}  max ${f(r.max)}`,
  );
}

async function configureSide(rtnl, index, own, peer, peerMac) {
  await Promise.all([
    sys.addAddress(rtnl, index, `${own.v4}/32`),
    sys.addAddress(rtnl, index, `${own.v6}/128`, { noDad: true }),
    sys.replaceRoute(rtnl, { dst: `${peer.v4}/32`, index, scope: 'link' }),
    sys.replaceRoute(rtnl, { dst: '10.60.0.0/16', index, via: peer.v4, onlink: true }),
    sys.replaceRoute(rtnl, { dst: `${peer.v6}/128`, index }),
    sys.replaceNeighbor(rtnl, { index, ip: peer.v4, mac: peerMac, permanent: true }),
    sys.replaceNeighbor(rtnl, { index, ip: peer.v6, mac: peerMac, permanent: true }),
  ]);
}

async function main() {
  if (process.getuid() !== 0) throw new Error('run as root');
  const tag = `${process.pid}`;
  const names = [`nsmt-bench-c-${tag}`, `nsmt-bench-e-${tag}`];
  const created = [];
  const t = { netnsCreate: [], socketOpen: [], withNetns: [], veth: [], connect: [], teardown: [], addr: [] };
  try {
    for (const name of names) {
      const t0 = performance.now();
      created.push(await sys.createNetns(name));
      t.netnsCreate.push(performance.now() - t0);
    }
    const [client, endpoint] = created;
    const host = sys.Rtnl.for(sys.hostNetns());
    for (const ns of created) {
      const t0 = performance.now();
      sys.Rtnl.for(ns);
      t.socketOpen.push(performance.now() - t0);
    }
    const rc = sys.Rtnl.for(client);
    const re = sys.Rtnl.for(endpoint);
    for (let i = 0; i < 1000; i++) {
      const t0 = performance.now();
      sys.withNetns(client, () => 0);
      t.withNetns.push(performance.now() - t0);
    }

    const c = { v4: '172.16.0.1', v6: 'fd00::1', mac: '02:00:00:00:00:01' };
    const e = { v4: '172.16.0.2', v6: 'fd00::2', mac: '02:00:00:00:00:02' };
    for (let i = 0; i < warmup + runs; i++) {
      const record = i >= warmup;
      let t0 = performance.now();
      const pair = await sys.createVethPair(
        host,
        { name: 'nsm-c', ns: client, mtu: 1446, up: true, mac: c.mac },
        { name: 'nsm-e', ns: endpoint, mtu: 1446, up: true, mac: e.mac },
      );
      const t1 = performance.now();
      await Promise.all([
        configureSide(rc, pair.a.index, c, e, e.mac),
        configureSide(re, pair.b.index, e, c, c.mac),
      ]);
      const t2 = performance.now();
      if (record) {
        t.veth.push(t1 - t0);
        t.connect.push(t2 - t0);
      }
      t0 = performance.now();
      await sys.addAddress(rc, pair.a.index, '192.0.2.1/32');
      if (record) t.addr.push(performance.now() - t0);
      t0 = performance.now();
      await sys.deleteLink(rc, pair.a.index);
      if (record) t.teardown.push(performance.now() - t0);
      if (settleMs > 0) await sleep(settleMs);
    }

    console.log(`node ${process.version}, ${runs} runs after ${warmup} warm-up runs, settle ${settleMs} ms`);
    show('createNetns (each)', t.netnsCreate);
    show('Rtnl.for (open socket in ns)', t.socketOpen);
    show('withNetns round trip', t.withNetns, 'us');
    show('addAddress (single request)', t.addr);
    show('createVethPair (incl. read-back)', t.veth);
    show('local connect total', t.connect);
    show('deleteLink (veth)', t.teardown);
  } finally {
    for (const ns of created) ns.close();
    for (const name of names) await sys.deleteNetns(name).catch(() => {});
    sys.Rtnl.closeAll();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
