/**
 * swapip (client and server), as upstream NSM's swapip: a host whose tunnel address is private
 * (behind NAT) advertises its public address in the REMOTE mechanisms it offers and answers,
 * and keeps the private one beside it under the api's original-IP keys, so that the other
 * end tunnels to an address it can reach while this end keeps working with its own.
 *
 * - Client (the requesting end): on the way out, every offered mechanism and the connection's
 *   mechanism whose `src_ip` is the private address get `src_ip` = public and `orig_src_ip` =
 *   private; on the way back, the answer's `src_ip` is the private address again (the tunnel
 *   client below sees only its own address).
 * - Server (the answering end): the answer's `dst_ip`, when it is the private address, becomes
 *   the public one with `orig_dst_ip` = private; a refresh that sends the public `dst_ip` back
 *   reaches the tunnel server with the private one.
 * Mechanisms that carry no such address (KERNEL) pass untouched.
 *
 * Placement: the client in the chain to remote agents after the tunnel clients, before dial;
 * the server right before the mechanisms element.
 */
import type { Connection, Mechanism, NetworkServiceRequest } from '../../api';
import { NetworkServiceClient, NetworkServiceServer, nextClient, nextServer } from '../../core/networkservice';
import { PARAM } from '../../mechanisms/common';

export interface SwapIpOptions {
  /** The address other hosts reach this one at (NAT's outside). */
  publicIP: string;
  /** This host's own tunnel address (NAT's inside); read per call (known once the underlay is). */
  privateIP: () => string | undefined;
}

type End = 'src' | 'dst';
const ipKey = (end: End) => (end === 'src' ? PARAM.SRC_IP : PARAM.DST_IP);
const origKey = (end: End) => (end === 'src' ? PARAM.SRC_ORIGINAL_IP : PARAM.DST_ORIGINAL_IP);

/** `mech` with its `<end>` address public, the private one kept; unchanged unless it is the private one. */
function toPublic(mech: Mechanism | null | undefined, end: End, opts: SwapIpOptions): Mechanism | null | undefined {
  const priv = opts.privateIP();
  const params = mech?.parameters;
  if (!mech || !params || !priv || params[ipKey(end)] !== priv) return mech;
  return { ...mech, parameters: { ...params, [ipKey(end)]: opts.publicIP, [origKey(end)]: priv } };
}

/** `mech` with its `<end>` address back to the private one it carries. */
function toPrivate(mech: Mechanism | null | undefined, end: End, opts: SwapIpOptions): Mechanism | null | undefined {
  const params = mech?.parameters;
  const orig = params?.[origKey(end)];
  if (!mech || !params || !orig || orig !== opts.privateIP()) return mech;
  const { [origKey(end)]: _orig, ...rest } = params;
  return { ...mech, parameters: { ...rest, [ipKey(end)]: orig } };
}

function withMechanism(conn: Connection, mech: Mechanism | null | undefined): Connection {
  return mech === conn.mechanism ? conn : { ...conn, mechanism: mech ?? null };
}

export function swapIpClient(opts: SwapIpOptions): NetworkServiceClient {
  return {
    async request(ctx, req) {
      const conn = req.connection ?? {};
      const out: NetworkServiceRequest = {
        ...req,
        connection: withMechanism(conn, toPublic(conn.mechanism, 'src', opts)),
        mechanism_preferences: (req.mechanism_preferences ?? []).map((m) => toPublic(m, 'src', opts) ?? m),
      };
      const answer = await nextClient(ctx).request(ctx, out);
      return withMechanism(answer, toPrivate(answer.mechanism, 'src', opts));
    },
    close: (ctx, conn) => nextClient(ctx).close(ctx, withMechanism(conn, toPublic(conn.mechanism, 'src', opts))),
  };
}

export function swapIpServer(opts: SwapIpOptions): NetworkServiceServer {
  return {
    async request(ctx, req) {
      const conn = req.connection ?? {};
      const sent = { ...req, connection: withMechanism(conn, toPrivate(conn.mechanism, 'dst', opts)) };
      const answer = await nextServer(ctx).request(ctx, sent);
      return withMechanism(answer, toPublic(answer.mechanism, 'dst', opts));
    },
    close: (ctx, conn) => nextServer(ctx).close(ctx, withMechanism(conn, toPrivate(conn.mechanism, 'dst', opts))),
  };
}
