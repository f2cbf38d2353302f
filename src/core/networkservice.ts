/**
 * The NetworkService API as chain elements: servers (entered from gRPC or the CLI) and
 * clients (going out to the next hop) have the gRPC methods' shapes, with a Ctx first.
 * Element contract: `request` returns the connection as this position's caller should see it;
 * `close` undoes what request did and must not throw for a connection it does not know.
 */
import type { Connection, NetworkServiceRequest } from '../api';
import { ChainKind, chainOf, nextOf } from './chain';
import { Ctx, Key } from './ctx';

export interface NetworkServiceServer {
  request(ctx: Ctx, request: NetworkServiceRequest): Promise<Connection>;
  close(ctx: Ctx, conn: Connection): Promise<void>;
}

export interface NetworkServiceClient {
  request(ctx: Ctx, request: NetworkServiceRequest): Promise<Connection>;
  close(ctx: Ctx, conn: Connection): Promise<void>;
}

/** End of a server chain: the connection as the request carries it. */
export const tailServer: NetworkServiceServer = {
  request: async (_ctx, req) => req.connection ?? {},
  close: async () => {},
};
/** End of a client chain: the connection as the request carries it. */
export const tailClient: NetworkServiceClient = {
  request: async (_ctx, req) => req.connection ?? {},
  close: async () => {},
};

const METHODS = ['request', 'close'] as const;
export const SERVER: ChainKind<NetworkServiceServer> = { key: new Key('next.server'), tail: tailServer, methods: METHODS };
export const CLIENT: ChainKind<NetworkServiceClient> = { key: new Key('next.client'), tail: tailClient, methods: METHODS };

/** The next server element after the caller's position. */
export const nextServer = (ctx: Ctx): NetworkServiceServer => nextOf(SERVER, ctx);
/** The next client element after the caller's position. */
export const nextClient = (ctx: Ctx): NetworkServiceClient => nextOf(CLIENT, ctx);

export const chainServer = (...elements: NetworkServiceServer[]): NetworkServiceServer => chainOf(SERVER, elements);
export const chainClient = (...elements: NetworkServiceClient[]): NetworkServiceClient => chainOf(CLIENT, elements);

/**
 * A server element that runs a client chain, then continues the server chain with the
 * connection the client returned. The client chain starts with no client `next`, so it ends
 * in its own tail, not in some outer client chain.
 */
export function clientToServer(client: NetworkServiceClient): NetworkServiceServer {
  return {
    async request(ctx, req) {
      const conn = await client.request(ctx.with(CLIENT.key, undefined), req);
      return nextServer(ctx).request(ctx, { ...req, connection: conn });
    },
    async close(ctx, conn) {
      await client.close(ctx.with(CLIENT.key, undefined), conn);
      await nextServer(ctx).close(ctx, conn);
    },
  };
}

/** A client element that runs a server chain, then continues the client chain. */
export function serverToClient(server: NetworkServiceServer): NetworkServiceClient {
  return {
    async request(ctx, req) {
      const conn = await server.request(ctx.with(SERVER.key, undefined), req);
      return nextClient(ctx).request(ctx, { ...req, connection: conn });
    },
    async close(ctx, conn) {
      await server.close(ctx.with(SERVER.key, undefined), conn);
      await nextClient(ctx).close(ctx, conn);
    },
  };
}
