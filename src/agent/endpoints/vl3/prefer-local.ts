/**
 * preferLocalVl3 server element: a request for a network service that a vL3 endpoint of this
 * agent serves goes to that endpoint (unless it names another): the host's router is the
 * member's first hop, so traffic between members of one host never leaves it, and a host's
 * members share its prefix. Other services are chosen among all endpoints as usual.
 * Placement: in the server chain, before discover.
 */
import { NetworkServiceServer, nextServer } from '../../../core/networkservice';

export function preferLocalVl3Server(localEndpointFor: (service: string) => string | undefined): NetworkServiceServer {
  return {
    async request(ctx, req) {
      const conn = req.connection ?? {};
      if (conn.network_service_endpoint_name) return nextServer(ctx).request(ctx, req);
      const local = localEndpointFor(conn.network_service ?? '');
      if (!local) return nextServer(ctx).request(ctx, req);
      return nextServer(ctx).request(ctx, { ...req, connection: { ...conn, network_service_endpoint_name: local } });
    },
    close: (ctx, conn) => nextServer(ctx).close(ctx, conn),
  };
}
