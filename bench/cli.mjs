// CLI latency: `nsm-agent version` and `nsm-agent status` (one agent holding 10 connections)
// from spawn to exit, against `node -e 0` (the runtime's own floor), runs interleaved in one run.
//
// Usage (root): npm run build && node bench/cli.mjs [runs] [--bin FILE]
//   --bin: the CLI entry to time (default bin/nsm-agent), e.g. another build's dist/agent/main.js;
//          the agent asked by `status` is this repository's either way.
import { spawn } from 'node:child_process';
import { BIN } from '../test/harness/agent.mjs';
import { args, TAG, mono, summary, ms, table, machine, writeSection, date } from './lib.mjs';
import { main } from './scope.mjs';

const opt = args();
const N = Number(opt._[0] ?? 30);
const CLI = opt.bin ?? BIN;
const CONNECTIONS = 10;
const P = `nsmcli${TAG}`;

/** Milliseconds from spawn to exit of `argv` under this Node; throws unless it exits 0. */
function timed(argv) {
  return new Promise((resolve, reject) => {
    const t0 = mono();
    const p = spawn(process.execPath, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d) => (err += d));
    p.once('exit', (code) => (code === 0 ? resolve(mono() - t0) : reject(new Error(`${argv.join(' ')}: exit ${code}: ${err}`))));
  });
}

main(async (scope) => {
  const dir = scope.dir('nsmcli-');
  const nse = await scope.netns(`${P}-nse`);
  const nsc = await scope.netns(`${P}-nsc`);
  const connections = Array.from({ length: CONNECTIONS }, (_, i) => ({ url: `kernel://bench/nsm-${i + 1}`, netns: nsc }));
  const ag = await scope.agent({
    dir,
    name: 'cli',
    config: { endpoints: [{ name: 'bench', services: ['bench'], cidr: '10.201.0.0/16', netns: nse }], connections },
  });
  const cases = {
    node: ['-e', '0'],
    version: [CLI, 'version'],
    status: [CLI, 'status', '--socket', ag.socket],
  };
  const names = Object.keys(cases);
  for (const n of names) await timed(cases[n]); // page cache warm
  const res = Object.fromEntries(names.map((n) => [n, []]));
  for (let i = 0; i < N; i++) {
    for (let k = 0; k < names.length; k++) {
      const n = names[(i + k) % names.length];
      res[n].push(await timed(cases[n]));
    }
  }
  const S = Object.fromEntries(names.map((n) => [n, summary(res[n])]));
  const row = (label, s) => [label, s.n, ms(s.p50), ms(s.p99), (s.p50 / S.node.p50).toFixed(2)];
  const body = [
    '## CLI latency',
    '',
    `Command: \`node bench/cli.mjs ${N}${opt.bin ? ` --bin ${opt.bin}` : ''}\` (after \`npm run build\`), ${date()}.`,
    `Machine: ${machine()}.`,
    '',
    'From spawning `node bin/nsm-agent ...` (the repository\'s entry; the packages run the same code with their own',
    `Node) to its exit, against \`node -e 0\` on the same Node; \`status\` asks an agent that holds ${CONNECTIONS} connections`,
    'on its systemd socket (as root: JSON, no HTTP/2; see docs/commands.md). Runs interleaved; milliseconds, and the',
    'p50 as a multiple of the floor\'s:',
    '',
    table(
      ['command', 'runs', 'p50', 'p99', 'p50 / floor'],
      [row('`node -e 0` (runtime floor)', S.node), row('`nsm-agent version`', S.version), row(`\`nsm-agent status\` (${CONNECTIONS} connections)`, S.status)],
    ),
  ].join('\n');
  console.log(body);
  writeSection('cli', body);
});
