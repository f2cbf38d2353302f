/**
 * The client side of the systemd socket (control.ts serves it): where it is and one call on it.
 * Kept apart from the server so that the CLI loads only this and node:net to use it.
 */
import net from 'node:net';
import path from 'node:path';
import { AgentError, COMPONENT, ErrorCode, ERROR_CODES } from '../../core/errors';
import type { UnitSpec } from './units';

export const CONTROL_SOCKET = 'systemd.sock';
const DEFAULT_AGENT_SOCKET_NAME = 'agent.sock';

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

export type ControlRequest = { op: 'reload' } | { op: 'unit-start'; spec: UnitSpec } | { op: 'unit-stop'; unit: string } | { op: 'units' } | { op: 'status' };

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
