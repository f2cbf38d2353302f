/**
 * ipam server element (endpoint chains): fills the IP context from an AddressPool, NSM's
 * point2pointipam. Sets src/dst addresses as host prefixes and the routes between them, keeps
 * the addresses across refreshes, and honours the request's excluded prefixes.
 * Placement: in an endpoint chain, after metadata; before the mechanism elements.
 */
import type { Connection } from '../../api';
import { NetworkServiceServer, nextServer } from '../../core/networkservice';
import { AddressPool } from './pool';
import { hostPrefix } from './cidr';

function addUnique<T>(list: T[], item: T, same: (a: T, b: T) => boolean): void {
  if (!list.some((x) => same(x, item))) list.push(item);
}

export function ipamServer(pool: AddressPool): NetworkServiceServer {
  return {
    async request(ctx, req) {
      const conn: Connection = structuredClone(req.connection ?? {});
      const ipc = ((conn.context ??= {}).ip_context ??= {});
      const id = conn.id ?? '';
      const isNew = !pool.get(id);
      const pairs = pool.allocate(
        id,
        { src: ipc.src_ip_addrs ?? [], dst: ipc.dst_ip_addrs ?? [] },
        ipc.excluded_prefixes ?? [],
      );
      const src = (ipc.src_ip_addrs ??= []);
      const dst = (ipc.dst_ip_addrs ??= []);
      const srcRoutes = (ipc.src_routes ??= []);
      const dstRoutes = (ipc.dst_routes ??= []);
      for (const p of pairs) {
        const s = hostPrefix(p.family, p.src);
        const d = hostPrefix(p.family, p.dst);
        // addresses of this pool's family that are not ours are replaced (a stale refresh)
        for (const list of [src, dst]) {
          for (let i = list.length - 1; i >= 0; i--) if (list[i] !== s && list[i] !== d && list[i]!.includes(':') === (p.family === 6)) list.splice(i, 1);
        }
        addUnique(src, s, (a, b) => a === b);
        addUnique(dst, d, (a, b) => a === b);
        addUnique(srcRoutes, { prefix: d }, (a, b) => a.prefix === b.prefix);
        addUnique(dstRoutes, { prefix: s }, (a, b) => a.prefix === b.prefix);
      }
      try {
        return await nextServer(ctx).request(ctx, { ...req, connection: conn });
      } catch (err) {
        if (isNew) pool.release(id);
        throw err;
      }
    },
    async close(ctx, conn) {
      try {
        await nextServer(ctx).close(ctx, conn);
      } finally {
        pool.release(conn.id ?? '');
      }
    },
  };
}
