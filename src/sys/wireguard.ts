// SPDX-License-Identifier: Apache-2.0
/**
 * Kernel WireGuard: links of kind `wireguard` over rtnetlink, and their configuration over the
 * `wireguard` generic-netlink family (WG_CMD_SET_DEVICE). A generic-netlink socket acts in the
 * namespace it was opened in, so the configuration is sent from a socket opened inside the
 * link's namespace. Failures are SysErrors (a genetlink ERROR reply's errno as `code`).
 */
import { FlagsNew, createGenericNetlink, createWireGuard, genl, putString, rt, type wg } from 'netlink';
import { SysError, toSysError } from './errors';
import { addressFamily, parseCidr } from './ip';
import { IFLA, IFLA_INFO, ifinfo } from './link';
import { withNetns, type Netns } from './netns';
import type { Rtnl } from './rtnl';
import { encodeSockaddr } from './sockaddr';

export interface WireguardPeerSettings {
  /** The peer's 32-byte public key. */
  publicKey: Buffer;
  /** Where the peer's UDP socket is (IPv4 or IPv6). */
  endpoint: { ip: string; port: number };
  /** Seconds; 0 disables. */
  persistentKeepalive: number;
  /** CIDRs routed to this peer (replacing the ones it had). */
  allowedIps: readonly string[];
}

export interface WireguardDeviceSettings {
  /** The device's 32-byte private key. */
  privateKey: Buffer;
  listenPort: number;
  /** Replace all the device's peers with these (empty: no peer). */
  peers: WireguardPeerSettings[];
}

/**
 * True if the kernel has the generic-netlink family `name` (its module built in or loaded).
 * Asked from the calling thread's namespace; any failure counts as no.
 */
export async function hasGenlFamily(name: string): Promise<boolean> {
  const sock = createGenericNetlink();
  try {
    const reply = await sock.ctrlRequest(genl.Commands.GET_FAMILY, { familyName: name });
    return reply.length > 0;
  } catch {
    return false;
  } finally {
    sock.socket.close();
  }
}

/** Creates a `wireguard` link named `name` (down, unconfigured) in the namespace of `rtnl`. EEXIST if taken. */
export async function createWireguardLink(rtnl: Rtnl, name: string): Promise<void> {
  await rtnl.request(
    rt.MessageType.NEWLINK,
    (out) => {
      ifinfo(out, 0);
      out.push(IFLA.IFNAME, putString(name));
      out.push(IFLA.LINKINFO, (info) => info.push(IFLA_INFO.KIND, putString('wireguard')));
    },
    { flags: FlagsNew.CREATE | FlagsNew.EXCL, subject: name },
  );
}

/**
 * Configures the kernel WireGuard link `ifname` of namespace `ns` (undefined: the agent's own):
 * private key, listen port, and its peers replaced by `settings.peers`. EADDRINUSE if the listen
 * port is bound by another socket.
 */
export async function setWireguardDevice(ns: Netns | undefined, ifname: string, settings: WireguardDeviceSettings): Promise<void> {
  const peers = settings.peers.map((p): wg.Peer => ({
    publicKey: p.publicKey,
    endpoint: encodeSockaddr(p.endpoint.ip, p.endpoint.port),
    persistentKeepaliveInterval: p.persistentKeepalive,
    flags: { replaceAllowedIps: true as const },
    allowedIps: p.allowedIps.map((cidr) => {
      const prefix = parseCidr(cidr, 'WG_CMD_SET_DEVICE');
      return { family: addressFamily(prefix.family), ipaddr: prefix.bytes, cidrMask: prefix.prefixLen };
    }),
  }));
  let sock: Awaited<ReturnType<typeof createWireGuard>>;
  try {
    // createWireGuard opens its socket synchronously, before its first await: inside `ns`.
    sock = ns === undefined ? await createWireGuard() : await withNetns(ns, () => ({ p: createWireGuard() })).p;
  } catch (err) {
    throw genlError(err, 'WG_CMD_SET_DEVICE', ifname);
  }
  try {
    await sock.setDevice(ifname, { privateKey: settings.privateKey, listenPort: settings.listenPort, flags: { replacePeers: true }, peers });
  } catch (err) {
    throw genlError(err, 'WG_CMD_SET_DEVICE', ifname);
  } finally {
    sock.socket.socket.close();
  }
}

/** The netlink package reports an ERROR reply as Error('Request rejected: EXXX'): a SysError with that code. */
function genlError(err: unknown, syscall: string, path: string): unknown {
  const m = err instanceof Error ? /^Request rejected: (E[A-Z0-9]+)$/.exec(err.message) : null;
  if (m?.[1] !== undefined) return new SysError(m[1], syscall, { path, cause: err });
  return toSysError(err, { syscall, path });
}
