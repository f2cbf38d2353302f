/**
 * clienturl server / client: put a fixed next-hop URL in the Ctx for the rest of the chain
 * (NSM common/clienturl; a client chain that always dials the same manager).
 * Placement: before the element that dials.
 */
import type { Ctx } from '../../core/ctx';
import { NetworkServiceClient, NetworkServiceServer, nextClient, nextServer } from '../../core/networkservice';
import { parseClientURL, withClientURL } from './context';

export function clientURLServer(url: URL | string): NetworkServiceServer {
  const u = typeof url === 'string' ? parseClientURL(url) : url;
  const w = (ctx: Ctx) => withClientURL(ctx, u);
  return {
    request: (ctx, req) => nextServer(ctx).request(w(ctx), req),
    close: (ctx, conn) => nextServer(ctx).close(w(ctx), conn),
  };
}

export function clientURLClient(url: URL | string): NetworkServiceClient {
  const u = typeof url === 'string' ? parseClientURL(url) : url;
  const w = (ctx: Ctx) => withClientURL(ctx, u);
  return {
    request: (ctx, req) => nextClient(ctx).request(w(ctx), req),
    close: (ctx, conn) => nextClient(ctx).close(w(ctx), conn),
  };
}
