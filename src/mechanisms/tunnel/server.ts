/**
 * Tunnel mechanism server (the serving agent's end of a WIREGUARD or VXLAN vWire).
 *
 * Request (conn.mechanism is this type, chosen by the mechanisms element):
 * - validates the requester's `src_*` parameters (INVALID_ARGUMENT naming the key);
 * - allocates this end's values once per connection (kept across refreshes) and answers with
 *   its `dst_*` parameters and MTU = min(offered, own); the context MTU is lowered to it;
 * - lets the chain reach the endpoint (DOWNSTREAM slot, filled by connect), then makes this
 *   end in the endpoint's namespace under the endpoint's interface name, with the endpoint
 *   side's addresses and routes. A refresh keeps the device and follows a changed peer and MTU.
 * - only endpoints hosted by this agent can be reached this way (no transit through a host);
 *   anything else is UNSUPPORTED_MECHANISM.
 * - a first request that fails after the endpoint answered closes the endpoint side and
 *   removes what was made: nothing half-made is left.
 * Close removes the device and releases its values, then goes on.
 *
 * Placement: as a handler of the mechanisms server element, before discover/select/connect.
 */
import type { Connection } from '../../api';
import { AgentError } from '../../core/errors';
import { NetworkServiceServer, nextServer } from '../../core/networkservice';
import { DOWNSTREAM, DownstreamSlot } from '../../networkservice/connect';
import { kernelSide } from '../kernel/params';
import { sidesOf, withBridge } from '../kernel/vwire';
import type { TunnelDataplane } from './dataplane';
import { headStart } from './headstart';
import { TunnelSessions, type Session } from './sessions';
import { clampContextMtu, innerMtu, minMtu, paramMtu, type Underlay } from './params';
import { clone } from '../../api/clone';

export interface TunnelServer extends NetworkServiceServer {
  describe(id: string): Record<string, unknown> | undefined;
}

export function tunnelServer<L, P, D>(dp: TunnelDataplane<L, P, D>, opts: { underlay: Underlay }): TunnelServer {
  const sessions = new TunnelSessions(dp);
  const ownMtu = innerMtu(opts.underlay, dp.overhead);

  const discard = (id: string, s: Session<L, D>) => sessions.discard(id, s);

  return {
    describe: (id) => sessions.describe(id),

    async request(ctx, req) {
      const conn: Connection = clone(req.connection ?? {});
      const mech = conn.mechanism ?? {};
      const params = mech.parameters ?? {};
      const id = conn.id ?? '';
      const peer = dp.peerOf(params, 'src');
      const offered = paramMtu(params);
      const { session, fresh } = await sessions.open(id, () => dp.allocate('dst', mech));
      const mtu = minMtu(offered, ownMtu) ?? ownMtu;
      conn.mechanism = { ...mech, parameters: { ...params, ...dp.advertise(session.local, 'dst'), MTU: String(mtu) } };
      clampContextMtu(conn, mtu);

      // A first request starts this end (keys, port, peer) while the endpoint answers.
      const head = fresh && !session.device ? headStart(dp, { local: session.local, peer, mtu }) : undefined;
      const slot: DownstreamSlot = {};
      let out: Connection;
      try {
        out = await nextServer(ctx).request(ctx.with(DOWNSTREAM, slot), { ...req, connection: conn });
      } catch (err) {
        await head?.drop();
        if (fresh) await discard(id, session).catch(() => {});
        throw err;
      }

      try {
        if (session.device) {
          await dp.update(session.device, session.local, peer, minMtu(out.context?.MTU, mtu));
        } else {
          if (!slot.conn || !slot.local) {
            throw new AgentError('UNSUPPORTED_MECHANISM', `the ${dp.type} mechanism reaches only endpoints hosted on this agent`);
          }
          const target = kernelSide(slot.conn.mechanism);
          session.device = await dp.create({
            local: session.local,
            peer,
            target,
            mtu: minMtu(out.context?.MTU, mtu),
            side: withBridge(sidesOf(out.context?.ip_context).endpoint, target.bridge),
            prepared: await head?.take(),
          });
        }
      } catch (err) {
        await head?.drop();
        if (fresh) await sessions.abandon(ctx, id, session, (c) => nextServer(ctx).close(c, out));
        throw AgentError.from(err);
      }
      // This end's values as the device has them now: the dataplane may have replaced one while
      // making it (a WireGuard listen port found taken), and the requester must reach this one.
      if (out.mechanism?.type === dp.type) {
        out.mechanism.parameters = { ...(out.mechanism.parameters ?? {}), ...dp.advertise(session.local, 'dst') };
      }
      sessions.persist(id, session, conn, ctx.clock.now());
      return out;
    },

    async close(ctx, conn) {
      await sessions.close(ctx, conn.id ?? '');
      return nextServer(ctx).close(ctx, conn);
    },
  };
}
