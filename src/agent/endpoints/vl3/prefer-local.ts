/**
 * preferLocalVl3 server element: a request for a network service that a vL3 endpoint of this
 * agent serves goes to that endpoint (unless it names another): the host's router is the
 * member's first hop, so traffic between members of one host never leaves it, and a host's
 * members share its prefix. The endpoint is hosted here, so no registry lookup is needed: its
 * name and URL are set for connect (discover and roundrobin pass a chosen URL through).
 * Other services are chosen among all endpoints as usual.
 * Placement: in the server chain, before discover.
 */
import { NetworkServiceServer, nextServer } from '../../../core/networkservice';
import { withClientURL } from '../../../networkservice/clienturl';

export interface LocalVl3Endpoint {
  name: string;
  /** The URL it is registered with (this agent's). */
  url: string;
}

export function preferLocalVl3Server(localEndpointFor: (service: string) => LocalVl3Endpoint | undefined): NetworkServiceServer {
  return {
    async request(ctx, req) {
      const conn = req.connection ?? {};
      if (conn.network_service_endpoint_name) return nextServer(ctx).request(ctx, req);
      const local = localEndpointFor(conn.network_service ?? '');
      if (!local) return nextServer(ctx).request(ctx, req);
      const next = withClientURL(ctx, local.url);
      return nextServer(next).request(next, { ...req, connection: { ...conn, network_service_endpoint_name: local.name } });
    },
    close: (ctx, conn) => nextServer(ctx).close(ctx, conn),
  };
}
