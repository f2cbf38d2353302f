// @ts-check
/**
 * gRPC clients of a running agent, on the generated API compiled to dist/ (`npm run build`):
 * NSM NetworkService and MonitorConnection, the registry, the agent's control API and health,
 * and one raw call made from inside another network namespace (netns-call.cjs).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { ROOT, requireRoot, sh, sleep } from './exec.mjs';

/** @type {typeof import('@grpc/grpc-js')} */
const grpc = requireRoot('@grpc/grpc-js');

/**
 * The generated gRPC API (dist/api).
 * @returns {any}
 */
export function api() {
  return requireRoot(path.join(ROOT, 'dist/api/index.js')).api();
}

/** @typedef {import('../../src/api').Connection} Connection */
/** @typedef {import('../../src/api').ConnectionEvent} ConnectionEvent */
/** @typedef {import('../../src/api').NetworkServiceRequest} NetworkServiceRequest */
/** @typedef {import('../../src/api').MonitorScopeSelector} MonitorScopeSelector */

/**
 * A unary call as a promise.
 * @param {any} client
 * @param {string} method
 * @param {unknown} req
 * @param {number} timeoutMs
 * @returns {Promise<any>}
 */
function unary(client, method, req, timeoutMs) {
  return new Promise((resolve, reject) =>
    client[method](req, { deadline: Date.now() + timeoutMs }, (/** @type {Error | null} */ err, /** @type {any} */ res) => (err ? reject(err) : resolve(res))),
  );
}

/** A raw NSM client on an agent's unix socket, as a unit's own NSC would be. */
export class NsmClient {
  /**
   * @param {string} socket
   * @param {{ timeoutMs?: number }} [opts] default deadline of request() and close() (15 s)
   */
  constructor(socket, opts = {}) {
    const a = api();
    const target = `unix://${socket}`;
    this.timeoutMs = opts.timeoutMs ?? 15_000;
    /** @type {any} */
    this.ns = new a.ns.networkservice.NetworkService(target, grpc.credentials.createInsecure());
    /** @type {any} */
    this.monitor = new a.ns.connection.MonitorConnection(target, grpc.credentials.createInsecure(), { channelOverride: this.ns.getChannel() });
  }

  /**
   * @param {NetworkServiceRequest} req
   * @param {number} [timeoutMs]
   * @returns {Promise<Connection>}
   */
  request(req, timeoutMs = this.timeoutMs) {
    return unary(this.ns, 'Request', req, timeoutMs);
  }

  /**
   * @param {Connection} conn
   * @param {number} [timeoutMs]
   * @returns {Promise<void>}
   */
  async close(conn, timeoutMs = this.timeoutMs) {
    await unary(this.ns, 'Close', conn, timeoutMs);
  }

  /**
   * Subscribes; returns a function that cancels the stream.
   * @param {MonitorScopeSelector} selector
   * @param {(e: ConnectionEvent) => void} onEvent
   * @returns {() => void}
   */
  watch(selector, onEvent) {
    const call = this.monitor.MonitorConnections(selector);
    call.on('data', onEvent);
    call.on('error', () => {});
    return () => call.cancel();
  }

  dispose() {
    grpc.Client.prototype.close.call(this.ns); // the service has a Close method that shadows close()
  }
}

/**
 * A Request for a KERNEL vWire of `service` into the namespace `netnsName`, named `ifname`.
 * @param {string} id
 * @param {string} service
 * @param {string} netnsName
 * @param {string} ifname
 * @param {Record<string, string>} [labels]
 * @returns {NetworkServiceRequest}
 */
export function kernelRequest(id, service, netnsName, ifname, labels = {}) {
  return {
    connection: { id, network_service: service, labels },
    mechanism_preferences: [{ cls: 'LOCAL', type: 'KERNEL', parameters: { name: ifname, inodeURL: `file:///run/netns/${netnsName}` } }],
  };
}

/**
 * The agent's own control API (what `nsm-agent status|connect|disconnect` use).
 * @param {string} socket
 * @param {number} [deadlineMs]
 */
export function agentClient(socket, deadlineMs = 120_000) {
  const c = new (api().agent.nsmagent.v1.Agent)(`unix://${socket}`, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 256 << 20 });
  return {
    /** @returns {Promise<any>} */
    status: () => unary(c, 'Status', {}, deadlineMs),
    /** @param {{ url: string; netns?: string; id?: string }} req */
    connect: (req) => unary(c, 'Connect', req, deadlineMs),
    /** @param {{ id: string }} req */
    disconnect: (req) => unary(c, 'Disconnect', req, deadlineMs),
    dispose: () => c.close(),
  };
}

/**
 * The registry's NSE service on a unix socket.
 * @param {string} socket
 * @param {number} [deadlineMs]
 */
export function registryClient(socket, deadlineMs = 60_000) {
  const opts = { 'grpc.max_receive_message_length': 256 << 20 };
  const nse = new (api().reg.registry.NetworkServiceEndpointRegistry)(`unix://${socket}`, grpc.credentials.createInsecure(), opts);
  return {
    /** @param {unknown} endpoint */
    register: (endpoint) => unary(nse, 'Register', endpoint, deadlineMs),
    /**
     * Find without watch: resolves with every response when the stream ends.
     * @param {unknown} query
     * @returns {Promise<any[]>}
     */
    find: (query) =>
      new Promise((resolve, reject) => {
        /** @type {any[]} */
        const out = [];
        const call = nse.Find({ network_service_endpoint: query, watch: false }, { deadline: Date.now() + deadlineMs });
        call.on('data', (/** @type {any} */ d) => out.push(d));
        call.on('end', () => resolve(out));
        call.on('error', reject);
      }),
    /**
     * Find with watch: calls onData for each response; returns the call (cancel() to end).
     * @param {unknown} query
     * @param {(response: any) => void} onData
     */
    watch(query, onData) {
      const call = nse.Find({ network_service_endpoint: query, watch: true });
      call.on('data', onData);
      call.on('error', () => {});
      return call;
    },
    dispose: () => grpc.Client.prototype.close.call(nse),
  };
}

/**
 * True when the agent reports its control API SERVING (endpoints registered, listeners up).
 * @param {string} socket
 * @returns {Promise<boolean>}
 */
export function healthy(socket) {
  return new Promise((resolve) => {
    const client = new (api().health.grpc.health.v1.Health)(`unix://${socket}`, grpc.credentials.createInsecure());
    client.Check({ service: 'nsmagent.v1.Agent' }, { deadline: Date.now() + 500 }, (/** @type {unknown} */ err, /** @type {any} */ res) => {
      client.close();
      resolve(!err && (res?.status === 'SERVING' || res?.status === 1));
    });
  });
}

/**
 * Waits until a gRPC server accepts a channel on the unix socket (or `proc` exits): the server
 * answering, before the agent's health says SERVING.
 * @param {string} socket
 * @param {import('node:child_process').ChildProcess} [proc]
 * @param {number} [timeoutMs]
 */
export async function waitServing(socket, proc, timeoutMs = 30_000) {
  const t0 = Date.now();
  for (;;) {
    if (proc && (proc.exitCode !== null || proc.signalCode !== null)) throw new Error(`agent exited (${proc.exitCode ?? proc.signalCode}) before serving on ${socket}`);
    if (existsSync(socket)) {
      const ok = await new Promise((resolve) => {
        const c = new grpc.Client(`unix://${socket}`, grpc.credentials.createInsecure());
        c.waitForReady(Date.now() + 500, (err) => {
          c.close();
          resolve(!err);
        });
      });
      if (ok) return;
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`agent at ${socket} did not start`);
    await sleep(20);
  }
}

/**
 * One raw NetworkService (or, with `service: 'nse'`, registry NSE) call to `target` made from
 * inside `netns`, as a peer agent on another host would make it.
 * @param {string} netns
 * @param {string} target
 * @param {'Request' | 'Close' | 'Register' | 'Unregister'} method
 * @param {unknown} request
 * @param {{ metadata?: Record<string, string>; identity?: { cert: string; key: string; bundle: string }; autoTokens?: boolean; service?: 'nse' }} [opts]
 * @returns {{ code: number; details?: string; response?: any }}
 */
export function callFrom(netns, target, method, request, opts = {}) {
  const script = path.join(ROOT, 'test/harness/netns-call.cjs');
  const r = sh('ip', ['netns', 'exec', netns, process.execPath, script, JSON.stringify({ target, method, request, ...opts })]);
  if (r.code !== 0) throw new Error(`netns-call failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}
