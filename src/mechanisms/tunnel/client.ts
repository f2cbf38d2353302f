/**
 * Tunnel mechanism client (the requesting agent's end of a WIREGUARD or VXLAN vWire).
 *
 * Request, for a connection whose payload this mechanism carries (any payload is frames when
 * the local end must join a bridge):
 * - offers the mechanism (`src_*` parameters and MTU) as a preference, or, on a refresh of a
 *   connection that already uses it, refreshes the `src_*` values in conn.mechanism (the
 *   `dst_*` values the server chose stay);
 * - when the server answers with this mechanism, validates its `dst_*` parameters and makes
 *   the local end: the device lands in the namespace and under the name the local client
 *   asked for (LOCAL_TARGET), with the client side's addresses and routes. A refresh keeps
 *   the device and only follows a changed peer and a changed MTU (a vL3 endpoint lowered it).
 * - a first request that fails after the server answered closes the server side again and
 *   removes whatever was made here: nothing half-made is left on either host.
 * Other payloads, or an answer with another mechanism, pass through untouched.
 * Close removes the device and releases its values, then goes on.
 *
 * Placement: in the client chain to remote agents, after mechanism translation, before dial.
 */
import type { Connection, Mechanism } from '../../api';
import { AgentError } from '../../core/errors';
import { NetworkServiceClient, nextClient } from '../../core/networkservice';
import { sidesOf, withBridge } from '../kernel/vwire';
import { CLS, PAYLOAD } from '../common';
import type { TunnelDataplane } from './dataplane';
import { headStart } from './headstart';
import { TunnelSessions, type Session } from './sessions';
import { innerMtu, LOCAL_TARGET, minMtu, paramMtu, type Underlay } from './params';
import { clone } from '../../api/clone';

export interface TunnelClient extends NetworkServiceClient {
  /** The device description per connection id, for status. */
  describe(id: string): Record<string, unknown> | undefined;
}

export function tunnelClient<L, P, D>(dp: TunnelDataplane<L, P, D>, opts: { underlay: Underlay }): TunnelClient {
  const sessions = new TunnelSessions(dp);
  const mtu = innerMtu(opts.underlay, dp.overhead);

  const discard = (id: string, s: Session<L, D>) => sessions.discard(id, s);

  return {
    describe: (id) => sessions.describe(id),

    async request(ctx, req) {
      const conn: Connection = clone(req.connection ?? {});
      const target = ctx.get(LOCAL_TARGET);
      // A bridge port (a passthrough endpoint's side) carries frames, whatever the payload.
      const carried = target?.bridge ? PAYLOAD.ETHERNET : conn.payload || PAYLOAD.IP;
      if (carried !== dp.payload) return nextClient(ctx).request(ctx, req);
      const id = conn.id ?? '';
      const { session: s, fresh } = await sessions.open(id, () => dp.allocate('src', undefined));
      const own = { ...dp.advertise(s.local, 'src'), MTU: String(mtu) };
      let prefs = req.mechanism_preferences ?? [];
      if (conn.mechanism?.type === dp.type) {
        conn.mechanism.parameters = { ...(conn.mechanism.parameters ?? {}), ...own };
      } else {
        const pref: Mechanism = { cls: CLS.REMOTE, type: dp.type, parameters: own };
        prefs = [...prefs, pref];
      }

      // A first request starts the local end while the server makes its own.
      const head = fresh && target && !s.device ? headStart(dp, { local: s.local, target, mtu }) : undefined;
      let out: Connection;
      try {
        out = await nextClient(ctx).request(ctx, { ...req, connection: conn, mechanism_preferences: prefs });
      } catch (err) {
        await head?.drop();
        if (fresh) await discard(id, s);
        throw err;
      }
      if (out.mechanism?.type !== dp.type) {
        await head?.drop();
        if (fresh) await discard(id, s);
        return out;
      }

      const session = s;
      try {
        const params = out.mechanism.parameters ?? {};
        const peer = dp.peerOf(params, 'dst');
        const deviceMtu = minMtu(paramMtu(params), out.context?.MTU, mtu);
        if (session.device) {
          await dp.update(session.device, session.local, peer, deviceMtu);
        } else {
          if (!target) throw new AgentError('INTERNAL', `${dp.type} client: no local target for the tunnel end in the context`);
          session.device = await dp.create({
            local: session.local,
            peer,
            target,
            mtu: deviceMtu,
            side: withBridge(sidesOf(out.context?.ip_context).client, target.bridge),
            prepared: await head?.take(),
          });
        }
      } catch (err) {
        await head?.drop();
        if (fresh) await sessions.abandon(ctx, id, session, (c) => nextClient(ctx).close(c, out));
        throw AgentError.from(err);
      }
      sessions.persist(id, session, conn, ctx.clock.now());
      return out;
    },

    async close(ctx, conn) {
      await sessions.close(ctx, conn.id ?? '');
      return nextClient(ctx).close(ctx, conn);
    },
  };
}
