/**
 * ipam server element (endpoint chains): fills the IP context from an AddressPool, NSM's
 * point2pointipam. Sets src/dst addresses as host prefixes and the routes between them, keeps
 * the addresses across refreshes, and honours the request's excluded prefixes.
 * Placement: in an endpoint chain, after metadata; before the mechanism elements.
 */
import type { Connection } from '../../api';
import { NetworkServiceServer, nextServer } from '../../core/networkservice';
import { noRecords, type Records } from '../../core/records';
import { recordExpiry } from '../utils';
import { AddressPool } from './pool';
import { hostPrefix } from './cidr';
import { clone } from '../../api/clone';

function addUnique<T>(list: T[], item: T, same: (a: T, b: T) => boolean): void {
  if (!list.some((x) => same(x, item))) list.push(item);
}

export interface IpamRecord {
  expires: number;
  src: string[];
  dst: string[];
}

export function ipamServer(pool: AddressPool, opts: { records?: Records<IpamRecord> } = {}): NetworkServiceServer {
  const records = opts.records ?? noRecords<IpamRecord>();
  for (const [id, r] of records.leftovers()) {
    try {
      pool.allocate(id, { src: r.src, dst: r.dst });
    } catch {
      /* the pool changed; the reaper drops the record */
    }
  }
  return {
    async request(ctx, req) {
      const conn: Connection = clone(req.connection ?? {});
      const ipc = ((conn.context ??= {}).ip_context ??= {});
      const id = conn.id ?? '';
      records.claim(id);
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
      let out: Connection;
      try {
        out = await nextServer(ctx).request(ctx, { ...req, connection: conn });
      } catch (err) {
        if (isNew) pool.release(id);
        throw err;
      }
      records.put(id, { expires: recordExpiry(conn, ctx.clock.now()), src: [...src], dst: [...dst] });
      return out;
    },
    async close(ctx, conn) {
      try {
        await nextServer(ctx).close(ctx, conn);
      } finally {
        pool.release(conn.id ?? '');
        records.delete(conn.id ?? '');
      }
    },
  };
}
