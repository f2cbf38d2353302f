/**
 * metadata server: per-Connection.id state for later elements (see context.ts).
 *
 * Placement: after updatepath and begin (the id must be this hop's, and begin serialises
 * events so the map is never used by two events of one connection at once).
 */
import { NetworkServiceServer, nextServer } from '../../core/networkservice';
import { MetadataStore } from './store';


export function metadataServer(): NetworkServiceServer & { readonly size: number } {
  const store = new MetadataStore('server');
  return {
    request: (ctx, req) => store.request(ctx, req, nextServer(ctx)),
    close: (ctx, conn) => store.close(ctx, conn, nextServer(ctx)),
    get size() {
      return store.size;
    },
  };
}
