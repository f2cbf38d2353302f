/**
 * metadata client: per-Connection.id state for a client chain (see context.ts). In a client
 * chain nested in a server chain, the server's metadata is kept and this element does nothing.
 *
 * Placement: after updatepath and begin.
 */
import { NetworkServiceClient, nextClient } from '../../core/networkservice';
import { MetadataStore } from './store';

export function metadataClient(): NetworkServiceClient & { readonly size: number } {
  const store = new MetadataStore('client');
  return {
    request: (ctx, req) => store.request(ctx, req, nextClient(ctx)),
    close: (ctx, conn) => store.close(ctx, conn, nextClient(ctx)),
    get size() {
      return store.size;
    },
  };
}
