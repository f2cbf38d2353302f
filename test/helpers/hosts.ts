/**
 * N "hosts" on one machine for multi-host tests: each host is a network namespace with an
 * `eth0` on a shared bridge (the underlay, in a namespace of its own) with an address in
 * 10.<net>.0.0/24 and a default route, and runs its own `nsm-agent run` (own config, socket,
 * state directory) inside its namespace. Extra namespaces (a client's, an endpoint's) are
 * made through the mesh so teardown() removes them too.
 *
 * teardown() stops every agent by PID (SIGKILL if SIGTERM is not enough), then deletes the
 * namespaces (which deletes their links); call it from afterAll/afterEach, it never throws.
 */
import { sh, uniq } from './exec';
import { startAgent, RunningAgent, StartOptions } from './agent';

export interface Host {
  name: string;
  /** The host's namespace (its "root" namespace). */
  netns: string;
  /** Underlay address (no prefix length). */
  ip: string;
  agent?: RunningAgent;
  /** The config it was last started with. */
  config?: Record<string, unknown>;
}

export interface Mesh {
  hosts: Host[];
  underlay: string;
  /** Starts (or restarts, reusing its directory) the agent of host i. */
  start(i: number, config: Record<string, unknown>, opts?: StartOptions): Promise<RunningAgent>;
  /** A namespace that teardown() removes. */
  netns(prefix: string): string;
  teardown(): Promise<void>;
}

function must(args: string[]): void {
  const r = sh('ip', args);
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}

let nextNet = 0;

export async function buildHosts(n: number, prefix = 'h'): Promise<Mesh> {
  const id = uniq(prefix).slice(0, 8);
  const net = 200 + ((process.pid + nextNet++) % 50);
  const underlay = `${id}-ul`;
  const namespaces: string[] = [];
  const hosts: Host[] = [];
  const addNs = (name: string) => {
    must(['netns', 'add', name]);
    namespaces.push(name);
    must(['-n', name, 'link', 'set', 'lo', 'up']);
  };
  const mesh: Mesh = {
    hosts,
    underlay,
    async start(i, config, opts = {}) {
      const h = hosts[i]!;
      h.config = config;
      h.agent = await startAgent({ name: h.name, ...config }, { ...opts, netns: h.netns });
      return h.agent;
    },
    netns(p) {
      const name = uniq(p);
      addNs(name);
      return name;
    },
    async teardown() {
      for (const h of hosts) await h.agent?.stop('SIGTERM').catch(() => {});
      for (const ns of namespaces.reverse()) sh('ip', ['netns', 'del', ns]);
    },
  };
  try {
    addNs(underlay);
    must(['-n', underlay, 'link', 'add', 'br0', 'type', 'bridge']);
    must(['-n', underlay, 'link', 'set', 'br0', 'up']);
    for (let i = 0; i < n; i++) {
      const name = `${id}-${String.fromCharCode(97 + i)}`;
      const ip = `10.${net}.0.${i + 1}`;
      addNs(name);
      must(['link', 'add', 'eth0', 'netns', name, 'type', 'veth', 'peer', 'name', `p${i}`, 'netns', underlay]);
      must(['-n', underlay, 'link', 'set', `p${i}`, 'master', 'br0', 'up']);
      must(['-n', name, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
      must(['-n', name, 'link', 'set', 'eth0', 'up']);
      must(['-n', name, 'route', 'add', 'default', 'dev', 'eth0']);
      hosts.push({ name: `host-${String.fromCharCode(97 + i)}`, netns: name, ip });
    }
  } catch (err) {
    await mesh.teardown();
    throw err;
  }
  return mesh;
}

/** One raw NetworkService call to `target` made from inside `netns`. */
export function callFrom(
  netns: string,
  target: string,
  method: 'Request' | 'Close' | 'Register' | 'Unregister',
  request: unknown,
  opts: { metadata?: Record<string, string>; identity?: { cert: string; key: string; bundle: string }; autoTokens?: boolean; service?: 'nse' } = {},
): { code: number; details?: string; response?: any } {
  const script = require('node:path').join(__dirname, 'netns-call.cjs');
  const r = sh('ip', ['netns', 'exec', netns, process.execPath, script, JSON.stringify({ target, method, request, ...opts })]);
  if (r.code !== 0) throw new Error(`netns-call failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}
