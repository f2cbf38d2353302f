/**
 * KERNEL mechanism, endpoint side (an endpoint hosted by the agent): answers with the
 * endpoint's own side of the vWire, its namespace and an interface name (configured, or
 * NSM's default `<service>-<random>` chosen once per connection and kept across refreshes).
 * Placement: last in a hosted endpoint's chain, after ipam.
 */
import { NetworkServiceServer, nextServer } from '../../core/networkservice';
import { clone } from '../../networkservice/utils';
import { defaultIfName, kernelMechanism } from './params';

export function kernelEndpointServer(opts: { netns: string; ifname?: string }): NetworkServiceServer {
  const names = new Map<string, string>();
  return {
    async request(ctx, req) {
      const conn = clone(req.connection ?? {});
      const id = conn.id ?? '';
      const ifname = opts.ifname ?? names.get(id) ?? defaultIfName(conn.network_service ?? '');
      names.set(id, ifname);
      conn.mechanism = kernelMechanism({ netns: opts.netns, ifname });
      try {
        return await nextServer(ctx).request(ctx, { ...req, connection: conn });
      } catch (err) {
        names.delete(id);
        throw err;
      }
    },
    async close(ctx, conn) {
      names.delete(conn.id ?? '');
      await nextServer(ctx).close(ctx, conn);
    },
  };
}
