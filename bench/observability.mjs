// What observability costs: three agents side by side on one host, each with a local endpoint
// (veth to the endpoint's namespace): one plain, one with `metrics:` (Prometheus /metrics on
// loopback), one with tracing (TELEMETRY=true to an OTLP receiver, test/helpers/otlp-receiver.cjs).
// A raw NSM client connects to each in turn, run by run (connects timed, closes not), so noise
// hits all alike. Then the resident memory of each idle agent, and the /metrics scrape time
// with 1,000 connections on the metrics agent: the page read as bytes (node:http), as a scraper
// such as Prometheus times it, and, in turn with it, read with fetch() and .text(), which adds
// the bench's own work of decoding the page (over a megabyte) into a string.
//
// Usage (root): npm run build && node bench/observability.mjs [runs] [--scrape-conns 1000]
import { readFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { NsmClient, kernelRequest } from '../test/harness/clients.mjs';
import { until } from '../test/harness/exec.mjs';
import { args, summary, ms, f1, mib, table, machine, writeSection, TAG, date } from './lib.mjs';
import { main } from './scope.mjs';

const opt = args();
const N = Number(opt._[0] ?? 200);
const SCRAPE_CONNS = Number(opt['scrape-conns'] ?? 1000);
const SCRAPES = 20;
const NSE = `nsmo${TAG}-nse`;
const NSC = `nsmo${TAG}-nsc`;
const METRICS_PORT = 19464 + (process.pid % 400);
const OTLP_PORT = 14317 + (process.pid % 400);

const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
/** CPU time (user + system) of a process so far, in ms (clock ticks of 10 ms). */
const cpuMs = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
};

main(async (scope) => {
  const load = os.loadavg()[0];
  const dir = scope.dir('nsmo-');
  for (const n of [NSE, NSC]) await scope.netns(n);
  const receiver = scope.lineProc(process.execPath, [path.resolve(import.meta.dirname, '../test/helpers/otlp-receiver.cjs'), `127.0.0.1:${OTLP_PORT}`]);
  if ((await receiver.next()) !== 'listening') throw new Error('the OTLP receiver did not start');
  let spans = 0;
  receiver.proc.stdout?.on('data', (d) => (spans += String(d).split('\n').length - 1));
  const endpoint = (tag) => ({ endpoints: [{ name: `ep-${tag}`, services: [`svc-${tag}`], cidr: `10.${tag === 'off' ? 210 : tag === 'metrics' ? 211 : 212}.0.0/16`, netns: NSE }] });
  const agents = {
    off: await scope.agent({ dir, name: 'off', config: endpoint('off') }),
    metrics: await scope.agent({ dir, name: 'metrics', config: { ...endpoint('metrics'), metrics: { listen: `127.0.0.1:${METRICS_PORT}` } } }),
    tracing: await scope.agent({
      dir,
      name: 'tracing',
      config: endpoint('tracing'),
      env: { ...process.env, TELEMETRY: 'true', NSM_OPEN_TELEMETRY_ENDPOINT: `127.0.0.1:${OTLP_PORT}` },
    }),
  };
  const clients = Object.fromEntries(Object.entries(agents).map(([k, a]) => [k, new NsmClient(a.socket, { timeoutMs: 60_000 })]));
  scope.defer(() => Object.values(clients).forEach((c) => c.dispose()));
  const letter = { off: 'o', metrics: 'm', tracing: 't' };

  // Warm-up, then the idle memory of each (after one connect and close).
  for (const k of Object.keys(agents)) {
    for (let i = 0; i < 20; i++) await clients[k].close(await clients[k].request(kernelRequest(`w-${k}-${i}`, `svc-${k}`, NSC, `w${letter[k]}${i}`)));
  }
  await new Promise((r) => setTimeout(r, 2_000));
  const rss = Object.fromEntries(Object.entries(agents).map(([k, a]) => [k, rssKiB(a.pid)]));

  const times = { off: [], metrics: [], tracing: [] };
  const order = Object.keys(agents);
  for (let i = 0; i < N; i++) {
    const turn = [...order.slice(i % 3), ...order.slice(0, i % 3)];
    for (const k of turn) {
      const t0 = performance.now();
      const conn = await clients[k].request(kernelRequest(`b-${k}-${i}`, `svc-${k}`, NSC, `b${letter[k]}${i}`));
      times[k].push(performance.now() - t0);
      await clients[k].close(conn);
    }
  }
  const s = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, summary(v)]));

  // Scrape time with SCRAPE_CONNS connections held on the metrics agent (8 connects at a time).
  const held = [];
  for (let i = 0; i < SCRAPE_CONNS; i += 8) {
    const batch = [];
    // (the endpoint side's generated name, 4 random characters, may collide once in a while: asked again)
    const connect = (j) => clients.metrics.request(kernelRequest(`s-${j}`, 'svc-metrics', NSC, `s${j}`)).catch(() => clients.metrics.request(kernelRequest(`s-${j}`, 'svc-metrics', NSC, `s${j}`)));
    for (let j = i; j < Math.min(i + 8, SCRAPE_CONNS); j++) batch.push(connect(j));
    held.push(...(await Promise.all(batch)));
  }
  const url = `http://127.0.0.1:${METRICS_PORT}/metrics`;
  /** The page's bytes, as a scraper reads them. */
  const getBytes = () =>
    new Promise((resolve, reject) =>
      http
        .get(url, (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => resolve(Buffer.concat(chunks)));
          res.on('error', reject);
        })
        .on('error', reject),
    );
  const scrapeMs = [];
  const fetchMs = [];
  let seriesLines = 0;
  let bytes = 0;
  const cpu0 = cpuMs(agents.metrics.pid);
  for (let i = 0; i < SCRAPES; i++) {
    const t0 = performance.now();
    bytes = (await getBytes()).length;
    scrapeMs.push(performance.now() - t0);
    const t1 = performance.now();
    const text = await (await fetch(url)).text();
    fetchMs.push(performance.now() - t1);
    seriesLines = text.split('\n').filter((l) => l.startsWith('server_rx_packets_total{')).length;
  }
  const scrapeCpuMs = (cpuMs(agents.metrics.pid) - cpu0) / (2 * SCRAPES);
  const rssHeld = rssKiB(agents.metrics.pid);
  for (let i = 0; i < held.length; i += 16) await Promise.all(held.slice(i, i + 16).map((c) => clients.metrics.close(c)));
  // The tracing agent's spans reached the receiver (it was not tracing into the void).
  if (!(await until(() => spans > 0, 5_000))) throw new Error('no spans received from the tracing agent');

  const sc = summary(scrapeMs);
  const fc = summary(fetchMs);
  const ratio = (k) => `${f1(((s[k].p50 - s.off.p50) / s.off.p50) * 100)}%`;
  const body = `## Observability overhead (issue 26)

\`node bench/observability.mjs ${N}\` (${date()}, ${machine()}): three agents side by side, one
plain, one with \`metrics:\`, one with tracing (\`TELEMETRY=true\` to an OTLP receiver on
loopback); a raw NSM client connects to each in turn (local endpoint, veth), ${N} runs;
connects timed, closes not. Load average ${load.toFixed(1)} at the start (other work on the
host): differences of a few percent are within the noise then.

${table(
  ['agent', 'connect p50 ms', 'p99 ms', 'vs plain (p50)', 'target', 'idle RSS MiB', 'RSS added MiB'],
  [
    ['plain', ms(s.off.p50), ms(s.off.p99), '', '', mib(rss.off), ''],
    ['metrics on', ms(s.metrics.p50), ms(s.metrics.p99), ratio('metrics'), '< 3%', mib(rss.metrics), mib(rss.metrics - rss.off)],
    ['tracing on', ms(s.tracing.p50), ms(s.tracing.p99), ratio('tracing'), '< 10%', mib(rss.tracing), mib(rss.tracing - rss.off)],
  ],
)}

\`/metrics\` with ${SCRAPE_CONNS} connections held (${seriesLines} series per traffic counter,
${(bytes / 1024).toFixed(0)} KiB of text), ${SCRAPES} scrapes read as bytes (node:http, as a scraper
times them): p50 ${ms(sc.p50)} ms, p99 ${ms(sc.p99)} ms (target < 50 ms). In turn with them, ${SCRAPES}
read with fetch() and .text() (the bench also decoding the page into a string): p50
${ms(fc.p50)} ms, p99 ${ms(fc.p99)} ms. The agent's CPU time per scrape: ${f1(scrapeCpuMs)} ms. Each scrape
reads the counters with one RTM_GETSTATS dump per namespace (the client's and the endpoint's,
a thousand veth ends each); the first also dumps the links' names, which are kept. The
metrics agent's RSS with them: ${mib(rssHeld)} MiB.
`;
  console.log(body);
  writeSection('observability', body);
});
