/**
 * Where the agent's socket is, for the CLI: kept apart from the configuration and the gRPC
 * client so that commands that need neither (`unit start`, run before units) load only this.
 */

/** listen.unix's default. */
export const DEFAULT_SOCKET = '/run/nsm-agent/agent.sock';

/** --socket, then $NSM_AGENT_SOCKET, then the default. */
export function socketPath(flag?: string): string {
  return flag || process.env['NSM_AGENT_SOCKET'] || DEFAULT_SOCKET;
}
