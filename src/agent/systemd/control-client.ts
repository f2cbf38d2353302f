/**
 * The client side of the systemd socket (control.ts serves it): where it is and one call on it,
 * made asynchronously or, for the CLI's one-shot commands, synchronously. Kept apart from the
 * server so that the CLI loads only this to use it (and node:net only for the asynchronous call).
 */
import type * as Net from 'node:net';
import path from 'node:path';
import { AgentError, COMPONENT, ErrorCode, ERROR_CODES } from '../../core/errors';
import { lazyModule } from '../../core/lazy';
import { unixCall } from '../../sys/unixcall';
import type { UnitSpec } from './units';

/** node:net, for the asynchronous call only. */
const net = lazyModule(() => require('node:net') as typeof Net);

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

/** An answer longer than this is refused: the agent's answers are JSON of a few kB to a few MB. */
const MAX_ANSWER_BYTES = 64 << 20;

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
    const timer = setTimeout(() => finish(noAnswerInTime(socketPath, timeoutMs)), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(JSON.stringify(req) + '\n'));
    socket.on('data', (d: string) => {
      buf += d;
      if (buf.length > MAX_ANSWER_BYTES) finish(new AgentError('UNAVAILABLE', `the agent at ${socketPath} answered more than ${MAX_ANSWER_BYTES} bytes`));
    });
    socket.on('error', (err: NodeJS.ErrnoException) => finish(unreachable(socketPath, err)));
    socket.on('end', () => {
      try {
        finish(undefined, readAnswer<T>(socketPath, buf));
      } catch (err) {
        finish(err);
      }
    });
  });
}

/**
 * controlCall made synchronously (src/sys unixCall), for the CLI's one-shot commands: no
 * node:net, no event loop for one exchange. The same answers and the same errors.
 */
export function controlCallSync<T>(socketPath: string, req: ControlRequest, timeoutMs = 120_000): T {
  let raw: Buffer;
  try {
    raw = unixCall(socketPath, Buffer.from(JSON.stringify(req) + '\n'), { timeoutMs, maxBytes: MAX_ANSWER_BYTES });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ETIMEDOUT') throw noAnswerInTime(socketPath, timeoutMs);
    if (e.code === 'EMSGSIZE') throw new AgentError('UNAVAILABLE', `the agent at ${socketPath} answered more than ${MAX_ANSWER_BYTES} bytes`);
    throw unreachable(socketPath, e);
  }
  return readAnswer<T>(socketPath, raw.toString('utf8'));
}

function noAnswerInTime(socketPath: string, timeoutMs: number): AgentError {
  return new AgentError('DEADLINE_EXCEEDED', `no answer from the agent at ${socketPath} within ${timeoutMs} ms`);
}

function unreachable(socketPath: string, err: NodeJS.ErrnoException): AgentError {
  const component = COMPONENT.agent(socketPath);
  if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
    return new AgentError('UNAVAILABLE', `cannot reach the agent at ${socketPath} (is nsm-agent.service running?)`, { component });
  }
  return new AgentError('UNAVAILABLE', `${socketPath}: ${err.message}`, { component });
}

/** The result of the agent's one-line answer, or its error as an AgentError. */
function readAnswer<T>(socketPath: string, text: string): T {
  const line = text.split('\n')[0] ?? '';
  let answer: { ok: boolean; result?: T; code?: string; message?: string; component?: string };
  try {
    answer = JSON.parse(line);
  } catch {
    throw new AgentError('UNAVAILABLE', `the agent at ${socketPath} closed without an answer`);
  }
  if (answer.ok) return answer.result as T;
  const code = (answer.code && answer.code in ERROR_CODES ? answer.code : 'UNKNOWN') as ErrorCode;
  throw new AgentError(code, String(answer.message ?? 'failed'), { component: typeof answer.component === 'string' ? answer.component : undefined });
}
