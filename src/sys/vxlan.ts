// SPDX-License-Identifier: Apache-2.0
/**
 * VXLAN devices. The UDP socket of a VXLAN device lives in the namespace it
 * is *created* in (the underlay), while the device can be placed in another
 * namespace (the overlay) in the same request via `ns`.
 */
import { FlagsNew, putString, putU32, putU8, rt } from './netlink-lib';
import { SysError, invalidArgument } from './errors';
import { parseIp } from './ip';
import { IFLA, IFLA_INFO, LinkInfo, getLink, ifinfo, validateIfName } from './link';
import type { Netns } from './netns';
import { Rtnl } from './rtnl';

// <linux/if_link.h> IFLA_VXLAN_*
const VXLAN = { ID: 1, GROUP: 2, LINK: 3, LOCAL: 4, LEARNING: 7, PORT: 15, GROUP6: 16, LOCAL6: 17 } as const;

export interface VxlanSpec {
  name: string;
  /** VXLAN network identifier, 0..2^24-1. */
  vni: number;
  /** Underlay source address (v4 or v6). */
  local?: string;
  /** Underlay remote (unicast peer or multicast group), same family as local. */
  remote?: string;
  /** UDP destination port; default 4789 (the kernel's own default is 8472). */
  port?: number;
  /** Underlay device ifindex (in the creating namespace). */
  dev?: number;
  mtu?: number;
  /** Place the device in this namespace; default: the creating one. */
  ns?: Netns;
  /** Enable source-address learning (default off, as NSM configures it). */
  learning?: boolean;
  up?: boolean;
}

/**
 * Creates a VXLAN device with one RTM_NEWLINK on `rtnl` (the underlay
 * namespace) and returns it as seen in its final namespace.
 */
export async function createVxlan(rtnl: Rtnl, spec: VxlanSpec): Promise<LinkInfo> {
  validateIfName(spec.name);
  if (!Number.isInteger(spec.vni) || spec.vni < 0 || spec.vni > 0xffffff) {
    throw invalidArgument('RTM_NEWLINK', spec.name, `VNI must be 0..16777215, got ${spec.vni}`);
  }
  const local = spec.local === undefined ? undefined : parseIp(spec.local, 'RTM_NEWLINK');
  const remote = spec.remote === undefined ? undefined : parseIp(spec.remote, 'RTM_NEWLINK');
  if (local !== undefined && remote !== undefined && local.family !== remote.family) {
    throw invalidArgument('RTM_NEWLINK', spec.name, 'local and remote must be the same address family');
  }
  const port = Buffer.alloc(2);
  port.writeUInt16BE(spec.port ?? 4789); // network order, unlike the other attributes

  await rtnl.request(
    rt.MessageType.NEWLINK,
    (out) => {
      ifinfo(out, 0, spec.up === true ? true : undefined);
      out.push(IFLA.IFNAME, putString(spec.name));
      if (spec.mtu !== undefined) out.push(IFLA.MTU, putU32(spec.mtu));
      if (spec.ns !== undefined) out.push(IFLA.NET_NS_FD, putU32(spec.ns.fd));
      out.push(IFLA.LINKINFO, (info) => {
        info.push(IFLA_INFO.KIND, putString('vxlan'));
        info.push(IFLA_INFO.DATA, (data) => {
          data.push(VXLAN.ID, putU32(spec.vni));
          if (remote !== undefined) data.push(remote.family === 4 ? VXLAN.GROUP : VXLAN.GROUP6, remote.bytes);
          if (local !== undefined) data.push(local.family === 4 ? VXLAN.LOCAL : VXLAN.LOCAL6, local.bytes);
          if (spec.dev !== undefined) data.push(VXLAN.LINK, putU32(spec.dev));
          data.push(VXLAN.LEARNING, putU8(spec.learning === true ? 1 : 0));
          data.push(VXLAN.PORT, port);
        });
      });
    },
    { flags: FlagsNew.CREATE | FlagsNew.EXCL, subject: spec.name },
  );

  const info = await getLink(spec.ns === undefined ? rtnl : Rtnl.for(spec.ns), spec.name);
  if (info === undefined) throw new SysError('ENODEV', 'RTM_GETLINK', { path: spec.name, detail: 'vxlan vanished after creation' });
  return info;
}
