/**
 * How `nsm-agent status` gets its answer: from the agent's systemd socket when this user may use
 * it (JSON over a unix socket in one synchronous exchange: the CLI loads neither node:net, HTTP/2
 * nor the codecs), else from the gRPC control API (another user with access to the agent socket,
 * an agent without the `status` op).
 */
import { AgentError } from '../../core/errors';
import { controlCallSync, controlSocketPath } from '../systemd/control-client';
import { viewStatus, type StatusView } from './status';

export { printStatus } from './status';

const SYSTEMD_SOCKET_TIMEOUT_MS = 30_000;

/** The status over the systemd socket; undefined when that socket cannot be used. */
function overSystemdSocket(agentSocket: string): StatusView | undefined {
  try {
    return viewStatus(controlCallSync<unknown>(controlSocketPath(agentSocket), { op: 'status' }, SYSTEMD_SOCKET_TIMEOUT_MS));
  } catch (err) {
    // An agent that took the call but did not answer in time would not answer gRPC either.
    if (err instanceof AgentError && err.code === 'DEADLINE_EXCEEDED') throw err;
    return undefined;
  }
}

export async function getStatus(agentSocket: string): Promise<StatusView> {
  return overSystemdSocket(agentSocket) ?? (await (await import('./commands')).getStatus(agentSocket));
}
