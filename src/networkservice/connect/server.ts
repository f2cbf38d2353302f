/**
 * connect server: hands the request to the selected endpoint and continues with the
 * endpoint's answer. An endpoint hosted by this agent is called in-process (NSM's localbypass:
 * it is recognised by name, whatever URL it registered with); other endpoints are reached
 * through `remote`, a client chain that dials the URL chosen by select.
 *
 * The upstream connection keeps its own id, mechanism and path index; it takes the context,
 * the endpoint name and the path segments of the downstream answer (NSM's connect + mechanism
 * translation). The downstream connection is left in the DOWNSTREAM slot for the mechanism
 * element that wraps this one (it builds the vWire between the two sides).
 * Placement: last in the server chain, after select.
 */
import type { Connection, NetworkServiceRequest } from '../../api';
import { fromTimestamp } from '../../api/time';
import { Ctx, Key } from '../../core/ctx';
import { AgentError } from '../../core/errors';
import { NetworkServiceServer, NetworkServiceClient, nextServer } from '../../core/networkservice';
import { INCOMING_TOKEN } from '../../core/token';
import { markNextHop } from '../trimpath';
import { clone } from '../../api/clone';

/** Filled by connect on the way back: the connection as the next hop returned it. */
export interface DownstreamSlot {
  conn?: Connection;
  /** True when the next hop is an endpoint of this agent. */
  local?: boolean;
}
export const DOWNSTREAM = new Key<DownstreamSlot>('connect.downstream');

export interface ConnectOptions {
  /** The in-process chain of a hosted endpoint, by endpoint name. */
  local(nseName: string): NetworkServiceServer | undefined;
  /** The client chain to a remote hop; absent while the agent has no remote mechanisms. */
  remote?: NetworkServiceClient;
}

/** The token this hop presents to the next: its own segment's, as a gRPC client would send it. */
function ownToken(ctx: Ctx, conn: Connection): Ctx {
  const seg = conn.path?.path_segments?.[conn.path.index ?? 0];
  const expires = fromTimestamp(seg?.expires);
  if (!seg || expires === undefined) return ctx;
  return ctx.with(INCOMING_TOKEN, { token: seg.token ?? '', expires });
}

function downstreamRequest(conn: Connection): NetworkServiceRequest {
  const down = clone(conn);
  down.mechanism = null;
  return { connection: down, mechanism_preferences: [] };
}

/** The upstream connection updated from the downstream answer. */
function translateBack(up: Connection, down: Connection): Connection {
  return {
    ...up,
    context: down.context,
    network_service_endpoint_name: down.network_service_endpoint_name || up.network_service_endpoint_name,
    payload: up.payload || down.payload,
    path: { index: up.path?.index ?? 0, path_segments: down.path?.path_segments ?? up.path?.path_segments ?? [] },
    state: down.state,
  };
}

export function connectServer(opts: ConnectOptions): NetworkServiceServer {
  return {
    async request(ctx, req) {
      const conn = req.connection ?? {};
      const name = conn.network_service_endpoint_name ?? '';
      const local = opts.local(name);
      const slot = ctx.get(DOWNSTREAM);
      let down: Connection;
      if (local) {
        down = await local.request(ownToken(ctx, conn), downstreamRequest(conn));
      } else if (opts.remote) {
        down = await opts.remote.request(ownToken(ctx, conn), { ...req, connection: clone(conn) });
      } else {
        throw new AgentError('UNAVAILABLE', `endpoint ${name} is not hosted by this agent and remote endpoints are not enabled`);
      }
      markNextHop(ctx); // the path goes on past this hop: the trimpath server must keep it
      if (slot) {
        slot.conn = down;
        slot.local = !!local;
      }
      const up = translateBack(conn, down);
      try {
        return await nextServer(ctx).request(ctx, { ...req, connection: up });
      } catch (err) {
        const [closeCtx, done] = ctx.detached(5_000);
        await (local ?? opts.remote)?.close(closeCtx, down).catch(() => {});
        done();
        throw err;
      }
    },
    async close(ctx, conn) {
      const name = conn.network_service_endpoint_name ?? '';
      const local = opts.local(name);
      const target = local ?? opts.remote;
      if (target) {
        const down = clone(conn);
        down.mechanism = null;
        try {
          await target.close(ownToken(ctx, conn), down);
        } catch (err) {
          ctx.log.warn('closing the downstream connection failed', { id: conn.id, error: err });
        }
      }
      await nextServer(ctx).close(ctx, conn);
    },
  };
}

