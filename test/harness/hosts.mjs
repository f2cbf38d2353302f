// @ts-check
/**
 * N "hosts" on one machine: each host is a network namespace with an `eth0` on a shared bridge
 * (the underlay, in a namespace of its own) with an address in 10.<net>.0.0/24 and a default
 * route, and runs its own `nsm-agent run` (own directory) inside its namespace. Extra
 * namespaces (a client's, an endpoint's) are made through the mesh so that teardown() removes
 * them too.
 *
 * teardown() stops every agent started through the mesh by PID (SIGKILL if SIGTERM is not
 * enough), then deletes the namespaces (which deletes their links); it never throws.
 */
import { sh, uniq } from './exec.mjs';
import { addNetns, delNetns } from './netns.mjs';
import { startAgent } from './agent.mjs';

/**
 * @typedef {object} Host
 * @property {string} name  host-a, host-b, ...
 * @property {string} netns  the host's namespace (its "root" namespace)
 * @property {string} ip  underlay address (no prefix length)
 * @property {import('./agent.mjs').RunningAgent} [agent]
 * @property {Record<string, unknown>} [config]  the config it was last started with
 */

/**
 * @typedef {object} Mesh
 * @property {Host[]} hosts
 * @property {string} underlay  the bridge's namespace
 * @property {(i: number, config: Record<string, unknown>, opts?: import('./agent.mjs').StartOptions) => Promise<import('./agent.mjs').RunningAgent>} start
 *   starts (or, with opts.dir, restarts) the agent of host i, named after the host
 * @property {(prefix: string) => string} netns  a namespace that teardown() removes
 * @property {() => Promise<void>} teardown
 */

/** @param {string[]} args */
function must(args) {
  const r = sh('ip', args);
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}

let nextNet = 0;

/**
 * @param {number} n
 * @param {string} [prefix]  of the namespaces' names
 * @param {{ net?: number }} [opts]  `net`: the underlay is 10.<net>.0.0/24 (default one of
 *   10.200-249, by PID, so that concurrent runs differ)
 * @returns {Promise<Mesh>}
 */
export async function buildHosts(n, prefix = 'h', opts = {}) {
  const id = uniq(prefix).slice(0, 8);
  const net = opts.net ?? 200 + ((process.pid + nextNet++) % 50);
  const underlay = `${id}-ul`;
  /** @type {string[]} */
  const namespaces = [];
  /** @type {Host[]} */
  const hosts = [];
  /** @param {string} name */
  const addNs = (name) => {
    addNetns(name);
    namespaces.push(name);
  };
  /** @type {Mesh} */
  const mesh = {
    hosts,
    underlay,
    async start(i, config, startOpts = {}) {
      const h = /** @type {Host} */ (hosts[i]);
      h.config = config;
      h.agent = await startAgent({ name: h.name, ...config }, { ...startOpts, netns: h.netns });
      return h.agent;
    },
    netns(p) {
      const name = uniq(p);
      addNs(name);
      return name;
    },
    async teardown() {
      for (const h of hosts) await h.agent?.stop('SIGTERM').catch(() => {});
      for (const ns of namespaces.reverse()) delNetns(ns);
    },
  };
  try {
    addNs(underlay);
    must(['-n', underlay, 'link', 'add', 'br0', 'type', 'bridge']);
    must(['-n', underlay, 'link', 'set', 'br0', 'up']);
    for (let i = 0; i < n; i++) {
      const letter = String.fromCharCode(97 + i);
      const name = `${id}-${letter}`;
      const ip = `10.${net}.0.${i + 1}`;
      addNs(name);
      must(['link', 'add', 'eth0', 'netns', name, 'type', 'veth', 'peer', 'name', `p${i}`, 'netns', underlay]);
      must(['-n', underlay, 'link', 'set', `p${i}`, 'master', 'br0', 'up']);
      must(['-n', name, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
      must(['-n', name, 'link', 'set', 'eth0', 'up']);
      must(['-n', name, 'route', 'add', 'default', 'dev', 'eth0']);
      hosts.push({ name: `host-${letter}`, netns: name, ip });
    }
  } catch (err) {
    await mesh.teardown();
    throw err;
  }
  return mesh;
}
