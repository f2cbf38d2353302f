// SPDX-License-Identifier: Apache-2.0
/**
 * Kernel WireGuard: links of kind `wireguard` over rtnetlink, and their configuration over the
 * `wireguard` generic-netlink family (WG_CMD_SET_DEVICE). A generic-netlink socket acts in the
 * namespace it was opened in, so the configuration is sent from a socket opened inside the
 * link's namespace. Failures are SysErrors (a genetlink ERROR reply's errno as `code`).
 */
import { FlagsNew, createGenericNetlink, putString, rt } from './netlink-lib';
import { genlFamilyId } from './genl';
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
 * WG_CMD_SET_DEVICE of <linux/wireguard.h> (enum wg_cmd: GET_DEVICE 0, SET_DEVICE 1). The
 * netlink package numbers its Commands from 1, so its setDevice() would send 2, which the kernel
 * rejects with EOPNOTSUPP: the request is built and sent here instead.
 */
export const WG_CMD_SET_DEVICE = 1;
/** Set on nested attributes: the wireguard family parses them with nla_parse_nested(). */
export const NLA_F_NESTED = 0x8000;
/** <linux/wireguard.h> attribute numbers and flags used here. */
const WGDEVICE_A = { IFNAME: 2, PRIVATE_KEY: 3, FLAGS: 5, LISTEN_PORT: 6, PEERS: 8 } as const;
const WGPEER_A = { PUBLIC_KEY: 1, FLAGS: 3, ENDPOINT: 4, PERSISTENT_KEEPALIVE_INTERVAL: 5, ALLOWEDIPS: 9 } as const;
const WGALLOWEDIP_A = { FAMILY: 1, IPADDR: 2, CIDR_MASK: 3 } as const;
const WGDEVICE_F_REPLACE_PEERS = 1;
const WGPEER_F_REPLACE_ALLOWEDIPS = 2;

function nla(type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length;
  const b = Buffer.alloc((len + 3) & ~3);
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  payload.copy(b, 4);
  return b;
}
const nested = (type: number, parts: Buffer[]): Buffer => nla(type | NLA_F_NESTED, Buffer.concat(parts));
const u8 = (v: number): Buffer => Buffer.from([v]);
const u16 = (v: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return b;
};
const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
};

/**
 * The attributes of WG_CMD_SET_DEVICE for `ifname`: NUL-terminated name, key, REPLACE_PEERS,
 * port, and the peers, each with REPLACE_ALLOWEDIPS. Every nested attribute (the peer list, each
 * peer, its allowed-IP list, each allowed IP) carries NLA_F_NESTED: the kernel's wireguard family
 * validates strictly and rejects one without it with EINVAL (the netlink package never sets it).
 */
export function setDeviceAttrs(ifname: string, settings: WireguardDeviceSettings): Buffer {
  const peers = settings.peers.map((p, i) =>
    nested(i + 1, [
      nla(WGPEER_A.PUBLIC_KEY, p.publicKey),
      nla(WGPEER_A.FLAGS, u32(WGPEER_F_REPLACE_ALLOWEDIPS)),
      nla(WGPEER_A.ENDPOINT, encodeSockaddr(p.endpoint.ip, p.endpoint.port)),
      nla(WGPEER_A.PERSISTENT_KEEPALIVE_INTERVAL, u16(p.persistentKeepalive)),
      nested(
        WGPEER_A.ALLOWEDIPS,
        p.allowedIps.map((cidr, j) => {
          const prefix = parseCidr(cidr, 'WG_CMD_SET_DEVICE');
          return nested(j + 1, [
            nla(WGALLOWEDIP_A.FAMILY, u16(addressFamily(prefix.family))),
            nla(WGALLOWEDIP_A.IPADDR, prefix.bytes),
            nla(WGALLOWEDIP_A.CIDR_MASK, u8(prefix.prefixLen)),
          ]);
        }),
      ),
    ]),
  );
  return Buffer.concat([
    nla(WGDEVICE_A.IFNAME, Buffer.from(`${ifname}\0`)),
    nla(WGDEVICE_A.PRIVATE_KEY, settings.privateKey),
    nla(WGDEVICE_A.FLAGS, u32(WGDEVICE_F_REPLACE_PEERS)),
    nla(WGDEVICE_A.LISTEN_PORT, u16(settings.listenPort)),
    nested(WGDEVICE_A.PEERS, peers),
  ]);
}

/** The wireguard family's id once found (stable while the module stays loaded). */
let wireguardFamily: number | undefined;

/**
 * Configures the kernel WireGuard link `ifname` of namespace `ns` (undefined: the agent's own):
 * private key, listen port, and its peers replaced by `settings.peers`. EADDRINUSE if the listen
 * port is bound by another socket; EOPNOTSUPP if the kernel has no WireGuard.
 */
export async function setWireguardDevice(ns: Netns | undefined, ifname: string, settings: WireguardDeviceSettings): Promise<void> {
  const attrs = setDeviceAttrs(ifname, settings);
  wireguardFamily ??= await genlFamilyId('wireguard');
  const family = wireguardFamily;
  if (family === undefined) throw new SysError('EOPNOTSUPP', 'WG_CMD_SET_DEVICE', { path: ifname, detail: 'no wireguard generic-netlink family' });
  let sock: ReturnType<typeof createGenericNetlink>;
  try {
    // Opened inside `ns`: a generic-netlink socket acts in the namespace it was opened in.
    sock = ns === undefined ? createGenericNetlink() : withNetns(ns, () => createGenericNetlink());
  } catch (err) {
    throw genlError(err, 'WG_CMD_SET_DEVICE', ifname);
  }
  try {
    await sock.request(family, WG_CMD_SET_DEVICE, 1, [attrs]);
  } catch (err) {
    throw genlError(err, 'WG_CMD_SET_DEVICE', ifname);
  } finally {
    sock.socket.close();
  }
}

/** The netlink package reports an ERROR reply as Error('Request rejected: EXXX'): a SysError with that code. */
function genlError(err: unknown, syscall: string, path: string): unknown {
  const m = err instanceof Error ? /^Request rejected: (E[A-Z0-9]+)$/.exec(err.message) : null;
  if (m?.[1] !== undefined) return new SysError(m[1], syscall, { path, cause: err });
  return toSysError(err, { syscall, path });
}
