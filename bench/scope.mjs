// What a benchmark makes, from the shared harness (test/harness), removed in reverse order when
// its scope closes, on success, on failure and on SIGINT/SIGTERM: namespaces, hosts, agents,
// etcd, probes, helper processes (by PID: SIGTERM, then SIGKILL), temp dirs.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, ip, run } from '../test/harness/exec.mjs';
import { lineProc, stopPid } from '../test/harness/proc.mjs';
import { startAgent } from '../test/harness/agent.mjs';
import { buildHosts } from '../test/harness/hosts.mjs';
import { startEtcd } from '../test/harness/etcd.mjs';
import { notifySocket, startProber } from '../test/harness/probe.mjs';

export class Scope {
  #undo = [];
  #closed = false;
  /** Runs `fn` when the scope closes (before what was deferred earlier). Returns it. */
  defer(fn) {
    this.#undo.push(fn);
    return fn;
  }
  /** A network namespace (loopback up). */
  async netns(name) {
    await ip(['netns', 'add', name]);
    this.defer(() => ip(['netns', 'del', name]).catch(() => {}));
    await ip(['-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }
  /** A temp directory. */
  dir(prefix = 'nsmb-') {
    const d = mkdtempSync(path.join(os.tmpdir(), prefix));
    this.defer(() => rmSync(d, { recursive: true, force: true }));
    return d;
  }
  /** A child process (or a bare PID) to stop. Returns it. */
  proc(p) {
    this.defer(() => stopPid(p));
    return p;
  }
  /** A long-lived line-oriented helper process (test/harness/proc.mjs lineProc). */
  lineProc(cmd, argv, opts) {
    const lp = lineProc(cmd, argv, opts);
    this.defer(lp.stop);
    return lp;
  }
  /**
   * N hosts on a bridge (test/harness/hosts.mjs) with the underlay 10.<net>.0.0/24; the mesh's
   * namespaces and the agents started through mesh.start() go when the scope closes.
   */
  async hosts(n, prefix, net) {
    const mesh = await buildHosts(n, prefix, { net });
    this.defer(() => mesh.teardown());
    return mesh;
  }
  /**
   * `nsm-agent run` (test/harness/agent.mjs) in its own directory `dir`/`name`, named `name`,
   * logLevel warn, its output on this process's; stopped when the scope closes. `opts` are
   * startAgent's (netns, env, waitReady, ...).
   */
  async agent({ dir, name = 'bench', config = {}, ...opts }) {
    const agent = await startAgent({ name, logLevel: 'warn', ...config }, { ...benchAgentOptions(), dir: path.join(dir, name), ...opts });
    this.defer(() => agent.stop());
    return agent;
  }
  /** A throwaway single-node etcd (test/harness/etcd.mjs); resolves with its host:port. */
  async etcd() {
    const etcd = await startEtcd({ quotaBackendBytes: 4 << 30 });
    this.defer(etcd.stop);
    return etcd.endpoint;
  }
  /** An ICMP prober in `netns` (test/harness/probe.mjs): 1 ms echoes until the first reply. */
  async prober(netns) {
    const p = await startProber(netns);
    this.defer(p.stop);
    return p;
  }
  /** A NOTIFY_SOCKET listener at `file` (test/harness/probe.mjs). */
  async notifySocket(file) {
    const n = await notifySocket(file);
    this.defer(n.stop);
    return n;
  }
  async close() {
    if (this.#closed) return;
    this.#closed = true;
    for (const fn of this.#undo.reverse()) {
      try {
        await fn();
      } catch (err) {
        console.error('cleanup:', err.message);
      }
    }
  }
}

/**
 * Options of every agent a benchmark starts: output passed through, more time to start and to
 * stop (thousands of connections to close), and BENCH_AGENT_NODE_ARGS, node options for every
 * agent, e.g. to profile them:
 *   BENCH_AGENT_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' node bench/remote.mjs 100
 */
export function benchAgentOptions() {
  const nodeArgs = (process.env.BENCH_AGENT_NODE_ARGS ?? '').split(' ').filter(Boolean);
  return { output: 'inherit', readyTimeoutMs: 30_000, stopGraceMs: 20_000, nodeArgs };
}

/** Compiles bench/floor/<name>.c with cc into a temp dir of the scope; returns the binary's path. */
export async function compileC(scope, name, libs = []) {
  const out = path.join(scope.dir('nsmb-cc-'), name);
  await run('cc', ['-O2', '-Wall', '-o', out, path.join(ROOT, 'bench/floor', `${name}.c`), ...libs.map((l) => `-l${l}`)]);
  return out;
}

/**
 * Runs `fn(scope)` as root and always closes the scope: on success, on error and on
 * SIGINT/SIGTERM. Sets the exit code.
 */
export function main(fn) {
  const scope = new Scope();
  const onSignal = (sig) => {
    console.error(`\n${sig}: cleaning up`);
    scope.close().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  (async () => {
    if (process.getuid() !== 0) throw new Error('run as root');
    // An agent started in this namespace reserves its WireGuard port range here (the sysctl is
    // per namespace); the host's value is put back at the end, as the tests' leak check does.
    const reserved = '/proc/sys/net/ipv4/ip_local_reserved_ports';
    const before = readFileSync(reserved, 'utf8');
    scope.defer(() => writeFileSync(reserved, before.trim() || '\n'));
    await fn(scope);
  })()
    .catch((err) => {
      console.error(err);
      process.exitCode = 1;
    })
    .finally(async () => {
      await scope.close();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    });
}
