/**
 * The systemd socket, one per agent socket (controlSocketPath): /run/nsm-agent/systemd.sock for
 * the default /run/nsm-agent/agent.sock, `<dir>/<name>-systemd.sock` for any other `<name>.sock`,
 * what nsm-connect@.service and ExecReload= use to reach the agent and wait for the result:
 *
 *   {"op":"reload"}                     re-read agent.yaml and apply it  -> ReloadResult
 *   {"op":"unit-start","spec":{...}}   apply a unit's declaration        -> UnitState
 *   {"op":"unit-stop","unit":"x.service"}                                -> {"stopped":bool}
 *   {"op":"units"}                                                       -> UnitState[]
 *
 * One JSON request line, one JSON answer line ({"ok":true,"result":...} or
 * {"ok":false,"code":"...","message":"..."}), then the server closes. Mode 0600, and only root
 * and the agent's own user pass the SO_PEERCRED check: these operations change what the host
 * serves. (The gRPC control API stays what the CLI uses for everything else; this socket is
 * deliberately tiny and separate so that systemd's helpers need no gRPC.)
 */
import net from 'node:net';
import { chmodSync, rmSync } from 'node:fs';
import path from 'node:path';
import { AgentError, COMPONENT, ErrorCode, ERROR_CODES } from '../../core/errors';
import type { Logger } from '../../core/log';
import { peerCredentials } from '../../sys/peercred';
import type { ReloadResult } from '../reload';
import type { UnitSpec, UnitState } from './units';
import { claimSocketPath } from '../socket-claim';

export const CONTROL_SOCKET = 'systemd.sock';
const DEFAULT_AGENT_SOCKET_NAME = 'agent.sock';
const MAX_REQUEST = 1 << 20;

/**
 * The systemd socket of the agent listening on `agentSocket`, next to it and named after it, so
 * that agents whose sockets share a directory each have their own.
 */
export function controlSocketPath(agentSocket: string): string {
  const dir = path.dirname(agentSocket);
  const name = path.basename(agentSocket);
  if (name === DEFAULT_AGENT_SOCKET_NAME) return path.join(dir, CONTROL_SOCKET);
  return path.join(dir, `${name.replace(/\.sock$/, '')}-${CONTROL_SOCKET}`);
}

export type ControlRequest = { op: 'reload' } | { op: 'unit-start'; spec: UnitSpec } | { op: 'unit-stop'; unit: string } | { op: 'units' };

export interface ControlHandlers {
  reload(): Promise<ReloadResult>;
  unitStart(spec: UnitSpec): Promise<UnitState>;
  unitStop(unit: string): Promise<boolean>;
  units(): UnitState[];
}

export interface ControlServer {
  readonly path: string;
  close(): Promise<void>;
}

async function dispatch(req: ControlRequest, h: ControlHandlers): Promise<unknown> {
  switch (req?.op) {
    case 'reload':
      return h.reload();
    case 'unit-start':
      if (!req.spec || typeof req.spec.unit !== 'string') throw new AgentError('INVALID_ARGUMENT', 'unit-start needs a spec');
      return h.unitStart(req.spec);
    case 'unit-stop':
      if (typeof req.unit !== 'string') throw new AgentError('INVALID_ARGUMENT', 'unit-stop needs a unit');
      return { stopped: await h.unitStop(req.unit) };
    case 'units':
      return h.units();
    default:
      throw new AgentError('INVALID_ARGUMENT', `unknown op ${JSON.stringify((req as { op?: unknown })?.op)}`);
  }
}

export async function listenControl(socketPath: string, handlers: ControlHandlers, opts: { log: Logger }): Promise<ControlServer> {
  await claimSocketPath(socketPath, 'the systemd socket');
  const allowed = new Set([0, process.getuid?.() ?? 0]);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    try {
      const cred = peerCredentials(socket);
      if (!allowed.has(cred.uid)) {
        opts.log.warn('systemd socket: connection refused', { pid: cred.pid, uid: cred.uid });
        socket.destroy();
        return;
      }
    } catch {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buf = '';
    let handled = false;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      if (handled) return;
      buf += chunk;
      if (buf.length > MAX_REQUEST) {
        handled = true;
        socket.end(JSON.stringify({ ok: false, code: 'INVALID_ARGUMENT', message: 'request too large' }) + '\n');
        return;
      }
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      handled = true;
      let req: ControlRequest;
      try {
        req = JSON.parse(buf.slice(0, nl)) as ControlRequest;
      } catch {
        socket.end(JSON.stringify({ ok: false, code: 'INVALID_ARGUMENT', message: 'request is not JSON' }) + '\n');
        return;
      }
      dispatch(req, handlers).then(
        (result) => socket.end(JSON.stringify({ ok: true, result }) + '\n'),
        (err) => {
          const e = AgentError.from(err);
          socket.end(JSON.stringify({ ok: false, code: e.code, message: e.message, ...(e.component ? { component: e.component } : {}) }) + '\n');
        },
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  chmodSync(socketPath, 0o600);
  return {
    path: socketPath,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
        rmSync(socketPath, { force: true });
      }),
  };
}

/** Sends one request and waits for the answer; failures are AgentErrors. */
export function controlCall<T>(socketPath: string, req: ControlRequest, timeoutMs = 120_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const socket = net.createConnection(socketPath);
    let buf = '';
    let settled = false;
    const finish = (err: unknown, value?: T) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(value as T);
    };
    const timer = setTimeout(() => finish(new AgentError('DEADLINE_EXCEEDED', `no answer from the agent at ${socketPath} within ${timeoutMs} ms`)), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(JSON.stringify(req) + '\n'));
    socket.on('data', (d: string) => (buf += d));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      const unreachable = err.code === 'ENOENT' || err.code === 'ECONNREFUSED';
      finish(
        unreachable
          ? new AgentError('UNAVAILABLE', `cannot reach the agent at ${socketPath} (is nsm-agent.service running?)`, { component: COMPONENT.agent(socketPath) })
          : new AgentError('UNAVAILABLE', `${socketPath}: ${err.message}`, { component: COMPONENT.agent(socketPath) }),
      );
    });
    socket.on('end', () => {
      const line = buf.split('\n')[0] ?? '';
      let answer: { ok: boolean; result?: T; code?: string; message?: string; component?: string };
      try {
        answer = JSON.parse(line);
      } catch {
        return finish(new AgentError('UNAVAILABLE', `the agent at ${socketPath} closed without an answer`));
      }
      if (answer.ok) return finish(undefined, answer.result);
      const code = (answer.code && answer.code in ERROR_CODES ? answer.code : 'UNKNOWN') as ErrorCode;
      finish(new AgentError(code, String(answer.message ?? 'failed'), { component: typeof answer.component === 'string' ? answer.component : undefined }));
    });
  });
}
