// Debian 12 VMs under qemu (TCG) with the agent's .deb, into BENCHMARKS.md: boot to agent
// READY, reboot to traffic again, and connect to first ping over kernel WireGuard against
// wireguard-go between the same two VMs.
//
//   npm run build && node bench/vm.mjs [--rounds N] [--from FIGURES.json]
//
// --from renders the section from the figures a previous run wrote (NSM_BENCH_OUT) instead of
// running the test.
// Runs the VM system test (test/vm/kernel-wireguard.test.ts), which measures these figures on
// its way and writes them to NSM_BENCH_OUT; nothing is measured twice. Needs root and what the
// VM test needs (qemu-system-x86, qemu-utils, debootstrap, e2fsprogs, dpkg-dev, binutils).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from '../test/harness/exec.mjs';
import { machine, table, writeSection } from './lib.mjs';

const argv = process.argv.slice(2);
const ri = argv.indexOf('--rounds');
const rounds = ri >= 0 ? Number(argv[ri + 1]) : 5;
const fi = argv.indexOf('--from');
const from = fi >= 0 ? argv[fi + 1] : undefined;

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[Math.floor((s.length - 1) / 2)] + s[Math.ceil((s.length - 1) / 2)]) / 2 : NaN;
};
const sec = (msv) => `${(msv / 1000).toFixed(1)} s`;

const dir = mkdtempSync(path.join(os.tmpdir(), 'nsm-vm-bench-'));
const figuresFile = path.join(dir, 'figures.json');
try {
  const t0 = Date.now();
  if (!from) {
    const t = spawnSync('npx', ['vitest', 'run', 'test/vm/kernel-wireguard.test.ts'], {
      cwd: ROOT,
      stdio: 'inherit',
      env: { ...process.env, NSM_BENCH_OUT: figuresFile, NSM_VM_ROUNDS: String(rounds) },
    });
    if (t.status !== 0) throw new Error('the VM test failed');
  }
  const wallS = (Date.now() - t0) / 1000;
  const f = JSON.parse(readFileSync(from ?? figuresFile, 'utf8'));
  const k = median(f.connectPingKernelMs);
  const g = median(f.connectPingWireguardGoMs);
  const rows = [
    ['cold boot of both VMs (qemu start to systemd "running")', sec(f.bootBothMs)],
    ['apt-get install ./nsm-agent_*.deb (gzip build), vm1 / vm2 at once', `${sec(f.vm1InstallMs)} / ${sec(f.vm2InstallMs)}`],
    ['reboot of vm1: kernel start to nsm-agent READY (sd_notify)', sec(f.bootToAgentReadyMs)],
    ['reboot of vm1: kernel start to the Provide= unit active', sec(f.bootToProviderActiveMs)],
    ['reboot of vm1: kernel start to traffic again (vm2 healed, untouched)', sec(f.bootToTrafficMs)],
    ['reboot of vm1: `systemctl reboot` to traffic again', sec(f.rebootCommandToTrafficMs)],
    [`connect to first ping, kernel WireGuard both ends (median of ${f.connectPingKernelMs.length})`, `${k} ms`],
    [`connect to first ping, wireguard-go both ends (median of ${f.connectPingWireguardGoMs.length})`, `${g} ms`],
    ['kernel / wireguard-go', (k / g).toFixed(2)],
    ['`systemctl restart nsm-agent` on both VMs, 20 ms ping', `${f.restartPingLost} of ${f.restartPingSent} lost`],
    ['the same .deb installed again on both VMs, 20 ms ping', `${f.upgradePingLost} of ${f.upgradePingSent} lost`],
  ];
  const out = table(['what', 'value'], rows);
  console.log(out);
  writeSection(
    'vm',
    `## Debian 12 VMs: kernel WireGuard, boot and reboot

Command: \`npm run build && node bench/vm.mjs --rounds ${rounds}\` (runs the VM system test
\`test/vm/kernel-wireguard.test.ts\`: two Debian 12 VMs under qemu **TCG** (no KVM here), one vCPU
and 1 GiB each, Debian's cloud kernel 6.1, the agent's .deb installed with apt).
Machine: ${machine()}.

${out}

Connect to first ping: \`nsm-agent connect\` on vm2 to the Provide= unit of vm1 until the first
echo reply in the client's namespace (50 ms probes), measured inside vm2. Emulation makes every
absolute time here several times slower than on hardware; the kernel / wireguard-go ratio is
what carries over.${from ? '' : ` Whole test run: ${wallS.toFixed(0)} s.`}`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
