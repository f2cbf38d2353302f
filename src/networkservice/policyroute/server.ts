/**
 * policyroute server: an endpoint hands its clients policy routes and plain routes, as
 * upstream's policy-based-routing endpoint (nse-kernel-pbr) does. The IP context's `policies`
 * become the endpoint's (replacing what the request carried, so that a changed list, or an
 * emptied one, reaches the client on its next refresh), when the endpoint has or had any; each
 * plain route is added to `src_routes` (routes in the
 * client's namespace, via the endpoint's address when it names no next hop) unless one with
 * that prefix is there.
 * The client side's forwarder makes the tables and rules (mechanisms/kernel/iprule.ts).
 * Placement: in an endpoint's chain, before ipam (which completes the IP context).
 */
import type { PolicyRoute, Route } from '../../api';
import { NetworkServiceServer, nextServer } from '../../core/networkservice';

/** What the element hands out; read at each Request, so the owner may change it in place. */
export interface PolicyRouteSettings {
  policies: readonly PolicyRoute[];
  routes: readonly Route[];
  /**
   * The endpoint decides the policies (it has or had some): the IP context's are replaced,
   * also by none. Otherwise those the Request carries pass unchanged.
   */
  ownsPolicies: boolean;
}

export function policyRouteServer(s: PolicyRouteSettings): NetworkServiceServer {
  return {
    request(ctx, req) {
      if (!s.ownsPolicies && !s.routes.length) return nextServer(ctx).request(ctx, req);
      const conn = req.connection ?? {};
      const ipc = { ...(conn.context?.ip_context ?? {}) };
      if (s.ownsPolicies) ipc.policies = s.policies.map((p) => ({ ...p, routes: (p.routes ?? []).map((r) => ({ ...r })) }));
      const routes = [...(ipc.src_routes ?? [])];
      for (const r of s.routes) if (!routes.some((x) => x.prefix === r.prefix)) routes.push({ ...r });
      ipc.src_routes = routes;
      const context = { ...(conn.context ?? {}), ip_context: ipc };
      return nextServer(ctx).request(ctx, { ...req, connection: { ...conn, context } });
    },
    close: (ctx, conn) => nextServer(ctx).close(ctx, conn),
  };
}
