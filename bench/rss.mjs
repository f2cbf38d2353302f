// Idle memory of `nsm-agent run` (one hosted endpoint, memory registry, no connections, no
// WireGuard): VmRSS 5 s after READY=1 (sd_notify on NOTIFY_SOCKET: nobody connects to the agent
// before the reading), then again 2 s after a first client (one gRPC health check), against two
// floors started the same way: Node idle, and Node with grpc-js serving one empty service on a
// unix socket. Runs interleaved; medians.
//
// Usage (root): npm run build && node bench/rss.mjs [runs] [--bin FILE]
//   --bin: the agent entry to measure (default bin/nsm-agent), e.g. another build's.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { sleep } from '../test/harness/exec.mjs';
import { healthy } from '../test/harness/clients.mjs';
import { stopPid } from '../test/harness/proc.mjs';
import { args, TAG, median, table, machine, writeSection, date } from './lib.mjs';
import { main } from './scope.mjs';

const opt = args();
const N = Number(opt._[0] ?? 3);
const IDLE_MS = 5_000;
const AFTER_CLIENT_MS = 2_000;
const vmRssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

const GRPC_FLOOR = `
const grpc = require('@grpc/grpc-js');
const s = new grpc.Server({ 'grpc.enable_channelz': 0 });
s.bindAsync('unix://' + process.argv[1], grpc.ServerCredentials.createInsecure(), (err) => { if (err) throw err; });
setInterval(() => {}, 1 << 30);`;

main(async (scope) => {
  const dir = scope.dir('nsmrss-');
  const nse = await scope.netns(`nsmr${TAG}-nse`);
  const notifyFile = path.join(dir, 'notify.sock');
  const notify = await scope.notifySocket(notifyFile);
  /** VmRSS of a Node process running `argv`, IDLE_MS after it started. */
  const nodeRss = async (argv) => {
    const p = scope.proc(spawn(process.execPath, argv, { stdio: 'inherit', cwd: path.dirname(new URL(import.meta.url).pathname) }));
    await sleep(IDLE_MS);
    const kib = vmRssKiB(p.pid);
    await stopPid(p);
    return kib;
  };
  let k = 0;
  const cases = {
    node: () => nodeRss(['-e', 'setInterval(() => {}, 1 << 30)']),
    grpc: () => nodeRss(['-e', GRPC_FLOOR, path.join(dir, `floor-${k++}.sock`)]),
    agent: async () => {
      const ag = await scope.agent({
        dir,
        name: `idle${k++}`,
        bin: opt.bin,
        config: { endpoints: [{ name: 'bench', services: ['bench'], cidr: '10.203.0.0/16', netns: nse }] },
        waitReady: false,
        env: { ...process.env, NOTIFY_SOCKET: notifyFile },
      });
      const exited = new Promise((_, reject) => ag.proc.once('exit', (code) => reject(new Error(`the agent exited (${code}) before READY=1`))));
      for (;;) {
        const m = await Promise.race([notify.next(), exited]);
        if (/(^| )READY=1/.test(m.msg) && m.msg.includes(`MAINPID=${ag.pid}`)) break;
      }
      await sleep(IDLE_MS);
      const kib = vmRssKiB(ag.pid);
      // The first client waits while the agent loads gRPC: asked again until it answers.
      const deadline = Date.now() + 10_000;
      while (!(await healthy(ag.socket))) if (Date.now() > deadline) throw new Error('the idle agent did not answer its first client');
      await sleep(AFTER_CLIENT_MS);
      res.client.push(vmRssKiB(ag.pid));
      await ag.stop('SIGTERM');
      return kib;
    },
  };
  const names = Object.keys(cases);
  const res = Object.fromEntries([...names, 'client'].map((n) => [n, []]));
  for (let i = 0; i < N; i++) for (let j = 0; j < names.length; j++) res[names[(i + j) % names.length]].push(await cases[names[(i + j) % names.length]]());
  const mib = (n) => (median(res[n]) / 1024).toFixed(1);
  const body = [
    '## Idle memory',
    '',
    `Command: \`node bench/rss.mjs ${N}${opt.bin ? ` --bin ${opt.bin}` : ''}\` (after \`npm run build\`), ${date()}.`,
    `Machine: ${machine()}.`,
    '',
    `VmRSS ${IDLE_MS / 1000} s after start, median of ${N} runs interleaved. The agent hosts one endpoint with the memory`,
    'registry and has no connections (READY=1 before the wait, read from NOTIFY_SOCKET: nobody has connected); then',
    `${AFTER_CLIENT_MS / 1000} s after a first client (one gRPC health check). The floors are Node processes started the same way.`,
    '',
    table(
      ['process', 'VmRSS (MiB)'],
      [
        ['`nsm-agent run`, one endpoint, idle', mib('agent')],
        ['the same agent after a first client', mib('client')],
        ['Node with a grpc-js server on a unix socket (floor)', mib('grpc')],
        ['Node idle, `node -e "setInterval(...)"` (floor)', mib('node')],
      ],
    ),
  ].join('\n');
  console.log(body);
  writeSection('rss', body);
});
