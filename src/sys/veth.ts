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
import { AttrStream, FlagsNew, putString, putU32, rt } from 'netlink';
import { SysError } from './errors';
import { parseMac } from './ip';
import { IFLA, IFLA_INFO, LinkInfo, getLink, ifinfo, setLinkUp, validateIfName } from './link';
import type { Netns } from './netns';
import { Rtnl } from './rtnl';

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
 * a's read-back then goes with it), then reads both ends back
 * (ifindex, MAC) on the ends' own sockets, sent right behind it without
 * waiting for its answer (rtnetlink requests are handled as they are sent,
 * see rtnl.ts; a read-back that found nothing although the NEWLINK succeeded
 * is repeated). With `b.up`, also SETLINK up and a read-back of `b` once the
 * pair exists.
 *
 * Errors: EINVAL (SysError, before any request) for names longer than 15
 * bytes or otherwise invalid; EEXIST if a name is taken in its namespace
 * (nothing is changed: the requests sent along with the NEWLINK only read).
 */
export async function createVethPair(host: Rtnl, a: VethEnd, b: VethEnd): Promise<VethPair> {
  validateIfName(a.name);
  validateIfName(b.name);
  const macA = a.mac === undefined ? undefined : parseMac(a.mac, 'RTM_NEWLINK');
  const macB = b.mac === undefined ? undefined : parseMac(b.mac, 'RTM_NEWLINK');
  const rtnlA = Rtnl.for(a.ns);
  const rtnlB = Rtnl.for(b.ns);

  // With `host` being a's own socket (the agent sends from the client's namespace, as the C
  // floor does), a's read-back goes in the same send as the NEWLINK.
  const upLater = b.up === true;
  let readA: Promise<LinkInfo | undefined> | undefined;
  const created = host.batch(() => {
    const p = host.request(
      rt.MessageType.NEWLINK,
      (out) => {
        endAttrs(out, a, macA, a.up === true);
        out.push(IFLA.LINKINFO, (info) => {
          info.push(IFLA_INFO.KIND, putString('veth'));
          info.push(IFLA_INFO.DATA, (data) => {
            data.push(VETH_INFO_PEER, (peer) => endAttrs(peer, b, macB, false));
          });
        });
      },
      { flags: FlagsNew.CREATE | FlagsNew.EXCL, subject: `${a.name}/${b.name}` },
    );
    if (!upLater && rtnlA === host) readA = getLink(rtnlA, a.name).catch(() => undefined);
    return p;
  });
  // Sent behind the NEWLINK; their answers are only looked at if it succeeded.
  if (!upLater) readA ??= getLink(rtnlA, a.name).catch(() => undefined);
  const readB = upLater ? undefined : getLink(rtnlB, b.name).catch(() => undefined);
  await created;

  let infoA: LinkInfo | undefined;
  let infoB: LinkInfo | undefined;
  if (upLater) {
    // Requests are handled in order, so both read-backs see b up (and a's carrier on).
    [, infoB, infoA] = await Promise.all([setLinkUp(rtnlB, b.name, true), getLink(rtnlB, b.name), getLink(rtnlA, a.name)]);
  } else {
    [infoA, infoB] = await Promise.all([readA, readB]);
    if (infoA === undefined || infoB === undefined) {
      [infoA, infoB] = await Promise.all([infoA ?? getLink(rtnlA, a.name), infoB ?? getLink(rtnlB, b.name)]);
    }
  }
  if (infoA === undefined || infoB === undefined) {
    // Someone deleted or moved an end between creation and lookup.
    throw new SysError('ENODEV', 'RTM_GETLINK', { path: infoA === undefined ? a.name : b.name, detail: 'veth end vanished after creation' });
  }
  return { a: infoA, b: infoB };
}
