// SPDX-License-Identifier: Apache-2.0
/**
 * veth pairs created directly in their target namespaces.
 *
 * One RTM_NEWLINK carries both ends, each with its own IFLA_NET_NS_FD (like
 * `ip link add A netns X type veth peer name B netns Y`), so neither end ever
 * appears in the namespace of the socket that sends the request and no
 * follow-up move is needed. Ends can be created up and with a fixed MAC in
 * the same request (see {@link VethEnd.up} for the one exception).
 */
import { AttrStream, FlagsNew, putString, putU32, rt } from './netlink-lib';
import { SysError } from './errors';
import { parseMac } from './ip';
import { IFLA, IFLA_INFO, LinkInfo, getLinkRequest, ifinfo, linkOf, setLinkUpRequest, validateIfName } from './link';
import type { Netns } from './netns';
import { Rtnl, type RtnlAnswer, type RtnlRequest } from './rtnl';

const VETH_INFO_PEER = 1;

export interface VethEnd {
  /** Interface name in `ns`, 1..15 bytes. */
  name: string;
  /** Namespace the end is created in. */
  ns: Netns;
  mtu?: number;
  /**
   * Bring the end up. For `a` this is part of the creating request. The
   * kernel cannot open a veth peer before the pair is linked (ENOTCONN), so
   * for `b` it is one extra request (and read-back) once the pair exists: a
   * caller with more to do on `b` saves that round trip by leaving `up` off
   * and sending the SETLINK with its own next requests.
   */
  up?: boolean;
  /** Fixed MAC 'aa:bb:..'; random if omitted. */
  mac?: string;
}

export interface VethPair {
  a: LinkInfo;
  b: LinkInfo;
}

/** ifinfomsg + per-end attributes, shared by the main end and the peer. */
function endAttrs(out: AttrStream, end: VethEnd, mac: Buffer | undefined, up: boolean): void {
  ifinfo(out, 0, up ? true : undefined);
  out.push(IFLA.IFNAME, putString(end.name));
  if (end.mtu !== undefined) out.push(IFLA.MTU, putU32(end.mtu));
  if (mac !== undefined) out.push(IFLA.ADDRESS, mac);
  out.push(IFLA.NET_NS_FD, putU32(end.ns.fd));
}

/**
 * Creates a veth pair with end `a` in `a.ns` and end `b` in `b.ns`, using
 * `host`'s socket to send the single creating request (any namespace's Rtnl
 * works; the ends do not pass through it; a's own socket saves a send, as
 * a's read-back then goes with it), then reads both ends back (ifindex, MAC)
 * on the ends' own sockets. With `b.up`, also SETLINK up `b` (in the send of
 * b's read-back) once the pair exists.
 *
 * Synchronous (Rtnl.transactNow): the pair exists and is read back when this
 * returns, with no event-loop turn in between, so a caller can send the ends'
 * configuration in the same stretch of code; it should let the loop turn
 * before going on to other work ({@link createVethPair} does).
 *
 * Errors (thrown): EINVAL before any request for names longer than 15 bytes
 * or otherwise invalid; EEXIST if a name is taken in its namespace (nothing is
 * changed: the request sent along with the NEWLINK only reads); ENODEV if an
 * end vanished before it was read back. A failure after the NEWLINK leaves the
 * pair for the caller to delete.
 */
export function createVethPairNow(host: Rtnl, a: VethEnd, b: VethEnd): VethPair {
  validateIfName(a.name);
  validateIfName(b.name);
  const macA = a.mac === undefined ? undefined : parseMac(a.mac, 'RTM_NEWLINK');
  const macB = b.mac === undefined ? undefined : parseMac(b.mac, 'RTM_NEWLINK');
  const rtnlA = Rtnl.for(a.ns);
  const rtnlB = Rtnl.for(b.ns);
  const create: RtnlRequest = {
    type: rt.MessageType.NEWLINK,
    body: (out) => {
      endAttrs(out, a, macA, a.up === true);
      out.push(IFLA.LINKINFO, (info) => {
        info.push(IFLA_INFO.KIND, putString('veth'));
        info.push(IFLA_INFO.DATA, (data) => {
          data.push(VETH_INFO_PEER, (peer) => endAttrs(peer, b, macB, false));
        });
      });
    },
    options: { flags: FlagsNew.CREATE | FlagsNew.EXCL, subject: `${a.name}/${b.name}` },
  };
  // With `host` being a's own socket (the agent sends from the client's namespace), a's read-back goes in the same send as the NEWLINK; rtnetlink handles the
  // requests of a send in order, so it sees the new link.
  const readAWith = rtnlA === host && b.up !== true;
  const [made, sentA] = host.transactNow(readAWith ? [create, getLinkRequest(a.name)] : [create]);
  if (made?.payloads === undefined) throw made?.error;
  const readsB = b.up === true ? [setLinkUpRequest(b.name, true), getLinkRequest(b.name)] : [getLinkRequest(b.name)];
  const answersB = rtnlB.transactNow(readsB);
  const up = b.up === true ? answersB[0] : undefined;
  if (up?.error !== undefined) throw up.error;
  const infoB = linkOf(answersB[answersB.length - 1] as RtnlAnswer);
  // With b.up, a is read after it (b up turns a's carrier on).
  const infoA = linkOf((readAWith ? sentA : rtnlA.transactNow([getLinkRequest(a.name)])[0]) as RtnlAnswer);
  if (infoA === undefined || infoB === undefined) {
    // Someone deleted or moved an end between creation and lookup.
    throw new SysError('ENODEV', 'RTM_GETLINK', { path: infoA === undefined ? a.name : b.name, detail: 'veth end vanished after creation' });
  }
  return { a: infoA, b: infoB };
}

/** {@link createVethPairNow}, continuing one event-loop turn later (as every Rtnl request does). */
export async function createVethPair(host: Rtnl, a: VethEnd, b: VethEnd): Promise<VethPair> {
  const pair = createVethPairNow(host, a, b);
  await new Promise<void>((resolve) => setImmediate(resolve));
  return pair;
}
