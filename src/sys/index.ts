// SPDX-License-Identifier: Apache-2.0
/**
 * Kernel-access layer: network namespaces, rtnetlink (links of any kind,
 * addresses, routes, neighbours), generic netlink (kernel WireGuard), sockaddr
 * encoding, sysctls, TUN and sd_notify. This directory is the only
 * place that loads the native addon and the `netlink` package; the rest of
 * the agent uses these typed functions. Linux only; most operations need
 * CAP_NET_ADMIN, namespace switching also CAP_SYS_ADMIN.
 *
 * Every failure is a {@link SysError} with a stable errno `code`.
 */
export { SysError, errnoCode } from './errors';
export type { IpFamily } from './ip';
export { formatIp, formatMac, parseCidr, parseIp, parseMac } from './ip';
export type { Netns } from './netns';
export {
  NETNS_RUN_DIR,
  createNetns,
  deleteNetns,
  hostNetns,
  listNetns,
  netnsPath,
  openNetns,
  sameNetns,
  withNetns,
} from './netns';
export { setLoopbackUp } from './loopback';
export { Rtnl, linkChanges } from './rtnl';
export type { RtnlAnswer, RtnlRequest } from './rtnl';
export type { LinkInfo } from './link';
export {
  createBridge,
  setMaster,
  setMasterUpRequest,
  deleteLink,
  getLink,
  getLinkRequest,
  linkOf,
  listLinks,
  moveLink,
  renameLink,
  renameLinkWith,
  setLinkAlias,
  setLinkUp,
  setLinkUpRequest,
  setMtu,
  validateIfName,
} from './link';
export type { LinkStats } from './linkstats';
export { getLinkStats, listLinkStats, parseLinkStats, readLinkStats } from './linkstats';
export type { VethEnd, VethPair } from './veth';
export { createVethPair, createVethPairNow } from './veth';
export type { VxlanSpec } from './vxlan';
export { createVxlan } from './vxlan';
export type { WireguardDeviceSettings, WireguardPeerSettings } from './wireguard';
export { createWireguardLink, setWireguardDevice } from './wireguard';
export { genlFamilyId, hasGenlFamily } from './genl';
export { SOCKADDR_IN6_LEN, SOCKADDR_IN_LEN, encodeSockaddr } from './sockaddr';
export type { AddressInfo, AddressOptions } from './addr';
export { addAddress, addAddressRequest, delAddress, listAddresses } from './addr';
export type { RouteInfo, RouteScope, RouteSelector, RouteSpec } from './route';
export { delRoute, listRoutes, replaceRoute, replaceRouteRequest } from './route';
export type { NeighborInfo, NeighborSpec } from './neigh';
export { delNeighbor, listNeighbors, replaceNeighbor, replaceNeighborRequest } from './neigh';
export { getSysctl, setSysctl, sysctlPath } from './sysctl';
export type { TunFlags, TunHandle } from './tun';
export { openTun } from './tun';
export { sdNotify, sendDatagram } from './notify';
export { releaseMemory, type ReleaseOptions } from './memory';
export { peerCredentials } from './peercred';
export type { PeerCredentials } from './peercred';
export { icmpEcho, type IcmpEchoOptions } from './icmp';
export { tcpClientInNetns, tcpServerInNetns, udpSocketInNetns } from './nssocket';
export { unixCall } from './unixcall';
export { liveArgv } from './proc';
export type { FileOp } from './files';
export { applyFileOps, tempPathOf } from './files';
export type { PortRange, RuleInfo, RuleSpec } from './rule';
export { addRule, delRule, flushTable, listRules, usedTables } from './rule';
