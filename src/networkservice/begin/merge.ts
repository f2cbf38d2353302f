/**
 * The client begin's three-way merge (NSM begin/merge.go). On a re-Request the caller sends the
 * connection it last got back (possibly changed); the chain may have moved on since (refresh,
 * heal). Start from the chain's current connection and take from the caller only what the
 * caller changed relative to what it was last given:
 * - network_service_endpoint_name, if the caller changed it;
 * - ip_context, ethernet_context, dns_context and MTU of the context, if the caller changed the
 *   context at all; extra_context key by key (changed values win, removed keys are removed).
 */
import type { Connection, ConnectionContext } from '../../api';
import { clone, protoEqual } from '../utils';

export function mergeConnection(
  returned: Connection | undefined,
  requested: Connection,
  current: Connection | undefined,
): Connection {
  if (!returned || !current) return requested;
  const conn = clone(current);
  if ((returned.network_service_endpoint_name ?? '') !== (requested.network_service_endpoint_name ?? '')) {
    conn.network_service_endpoint_name = requested.network_service_endpoint_name ?? '';
  }
  conn.context = mergeContext(returned.context ?? undefined, requested.context ?? undefined, current.context ?? undefined);
  return conn;
}

function mergeContext(
  returned: ConnectionContext | undefined,
  requested: ConnectionContext | undefined,
  current: ConnectionContext | undefined,
): ConnectionContext | undefined {
  if (!current) return requested;
  const rv = clone(current);
  if (!protoEqual(returned, requested)) {
    rv.ip_context = requested?.ip_context ?? null;
    rv.ethernet_context = requested?.ethernet_context ?? null;
    rv.dns_context = requested?.dns_context ?? null;
    rv.MTU = requested?.MTU ?? 0;
    rv.extra_context = mergeMap(returned?.extra_context, requested?.extra_context, current.extra_context);
  }
  return rv;
}

function mergeMap(
  returned: Record<string, string> | undefined,
  requested: Record<string, string> | undefined,
  current: Record<string, string> | undefined,
): Record<string, string> {
  const rv: Record<string, string> = { ...(current ?? {}) };
  for (const [k, v] of Object.entries(returned ?? {})) {
    const req = requested?.[k];
    if (req === undefined) delete rv[k];
    else if (req !== v) rv[k] = req;
  }
  return rv;
}
