/**
 * The views of the agent that reload and units work through: its hosted endpoints, its held
 * connections, and the server chain's connections (clients' ones included).
 */
import type { Connection } from '../api';
import type { Logger } from '../core/log';
import type { EndpointHost } from './endpoints';
import type { HeldConnections } from './held';

export interface AgentParts {
  endpoints: EndpointHost;
  held: HeldConnections;
  /** The server chain's connections (the monitor hub). */
  served: {
    connections(): Connection[];
    /** Asks the client of connection `id` (this hop's id) to Request it again; false if unknown. */
    refreshRequested?(id: string): boolean;
  };
  /** Namespace DNS: settled() waits until the resolv.conf files of the connections so far are written. */
  dns?: { settled(): Promise<void> };
}

/** Closes every connection that reaches endpoint `name` (held ones and clients'); returns their ids. */
export async function closeEndpointConnections(parts: Pick<AgentParts, 'held' | 'served'>, name: string, log: Logger): Promise<string[]> {
  const closed: string[] = [];
  for (const [id, h] of parts.held.list()) {
    if (h.conn.network_service_endpoint_name !== name) continue;
    await parts.held.disconnect(id).catch((err) => log.warn('close failed', { id, error: err }));
    closed.push(id);
  }
  for (const c of parts.served.connections()) {
    if (c.network_service_endpoint_name !== name || !c.id) continue;
    await parts.held.disconnect(c.id).catch((err) => log.warn('close failed', { id: c.id, error: err }));
    closed.push(c.id);
  }
  return closed;
}
