/**
 * Taking a unix socket path for a listener: a socket that a live process answers on belongs to
 * that process (another agent) and is refused with SOCKET_IN_USE, untouched; a file that
 * nobody answers on (left by an agent killed with SIGKILL) is stale and removed.
 */
import net from 'node:net';
import { existsSync, rmSync } from 'node:fs';
import { AgentError } from '../core/errors';

/** A connect that neither succeeds nor fails within this is taken as a live, busy listener. */
const PROBE_TIMEOUT_MS = 1_000;

/** Whether something accepts connections on the unix socket at `socketPath`. */
export function socketAnswers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection(socketPath);
    const done = (live: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(live);
    };
    const timer = setTimeout(() => done(true), PROBE_TIMEOUT_MS);
    s.on('connect', () => done(true));
    s.on('error', () => done(false));
  });
}

/** Throws SOCKET_IN_USE if a live process answers on `socketPath`; removes a stale file. */
export async function claimSocketPath(socketPath: string, what: string): Promise<void> {
  if (!existsSync(socketPath)) return;
  if (await socketAnswers(socketPath)) {
    throw new AgentError('SOCKET_IN_USE', `${what} ${socketPath} is in use by a running agent; give this agent its own listen.unix`);
  }
  rmSync(socketPath, { force: true });
}
