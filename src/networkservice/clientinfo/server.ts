/**
 * clientinfo server (NSM common/clientinfo): adds this node's identity to the request labels,
 * so that network service matches can select on it (e.g. destination `nodeName: "{{.nodeName}}"`).
 * Existing labels are never overwritten; empty values are not added.
 *
 * Placement: before discover (matching reads the labels); in the manager's chain after trimpath.
 */
import { NetworkServiceServer, nextServer } from '../../core/networkservice';

export interface ClientInfo {
  /** Label `nodeName`: the host's name (NSM: the nsmgr's NODE_NAME). */
  nodeName?: string;
  /** Label `podName` (NSM: POD_NAME). */
  podName?: string;
  /** Label `clusterName` (NSM: CLUSTER_NAME). */
  clusterName?: string;
}

export function clientInfoServer(info: ClientInfo): NetworkServiceServer {
  const add = Object.entries(info).filter((e): e is [string, string] => typeof e[1] === 'string' && e[1] !== '');
  return {
    request(ctx, req) {
      const conn = req.connection ?? {};
      const labels = { ...(conn.labels ?? {}) };
      for (const [k, v] of add) if (!(k in labels)) labels[k] = v;
      return nextServer(ctx).request(ctx, { ...req, connection: { ...conn, labels } });
    },
    close: (ctx, conn) => nextServer(ctx).close(ctx, conn),
  };
}
