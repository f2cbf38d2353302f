// SPDX-License-Identifier: Apache-2.0
/**
 * IPv4/IPv6 interface addresses. One netlink request per call; addresses are
 * given in CIDR form ('10.0.0.1/24', 'fd00::1/64'; a bare address is a host
 * prefix).
 */
import { FlagsGet, FlagsNew, putU32, rt } from './netlink-lib';
import { IpFamily, addressFamily, formatIp, parseCidr } from './ip';
import type { Rtnl, RtnlRequest } from './rtnl';

const IFA = { ADDRESS: 1, LOCAL: 2, FLAGS: 8 } as const;
const IFA_F_NODAD = 0x02;
const IFA_F_NOPREFIXROUTE = 0x200;

export interface AddressOptions {
  /** IPv6: skip duplicate address detection, so the address is usable at once. */
  noDad?: boolean;
  /** Do not install the connected prefix route. */
  noPrefixRoute?: boolean;
  /** Replace an existing identical address instead of failing with EEXIST. */
  replace?: boolean;
}

export interface AddressInfo {
  index: number;
  family: IpFamily;
  address: string;
  prefixLen: number;
  /** `${address}/${prefixLen}` */
  cidr: string;
  /** IPv6 address still in DAD (not yet usable as a source). */
  tentative: boolean;
}

function message(type: rt.MessageType, index: number, cidr: string, flags: number, ifaFlags: number): RtnlRequest {
  const syscall = `RTM_${rt.MessageType[type]}`;
  const prefix = parseCidr(cidr, syscall);
  return {
    type,
    body: (out) => {
      // The u8 ifa_flags only holds the low bits; IFA_FLAGS carries all of them.
      out.emit(rt.formatAddress({ family: addressFamily(prefix.family), prefixlen: prefix.prefixLen, index }));
      out.push(IFA.LOCAL, prefix.bytes);
      out.push(IFA.ADDRESS, prefix.bytes);
      if (ifaFlags !== 0) out.push(IFA.FLAGS, putU32(ifaFlags));
    },
    options: { flags, subject: cidr },
  };
}

/** The request of {@link addAddress} (EINVAL, thrown here, for a bad `cidr`). */
export function addAddressRequest(index: number, cidr: string, options: AddressOptions = {}): RtnlRequest {
  const flags = FlagsNew.CREATE | (options.replace === true ? FlagsNew.REPLACE : FlagsNew.EXCL);
  const ifaFlags = (options.noDad === true ? IFA_F_NODAD : 0) | (options.noPrefixRoute === true ? IFA_F_NOPREFIXROUTE : 0);
  return message(rt.MessageType.NEWADDR, index, cidr, flags, ifaFlags);
}

/** Adds `cidr` to link `index`. EEXIST if already present (unless `replace`). */
export async function addAddress(rtnl: Rtnl, index: number, cidr: string, options: AddressOptions = {}): Promise<void> {
  const r = addAddressRequest(index, cidr, options);
  await rtnl.request(r.type, r.body, r.options);
}

/** Removes `cidr` from link `index`. EADDRNOTAVAIL if it is not there. */
export async function delAddress(rtnl: Rtnl, index: number, cidr: string): Promise<void> {
  const r = message(rt.MessageType.DELADDR, index, cidr, 0, 0);
  await rtnl.request(r.type, r.body, r.options);
}

/** Addresses of the namespace, optionally only those of link `index`. */
export async function listAddresses(rtnl: Rtnl, index?: number): Promise<AddressInfo[]> {
  const replies = await rtnl.request(rt.MessageType.GETADDR, (out) => out.emit(rt.formatAddress({})), {
    flags: FlagsGet.DUMP,
  });
  const result: AddressInfo[] = [];
  for (const payload of replies) {
    const { data, attrs } = rt.parseAddressMessage(payload);
    if (index !== undefined && data.index !== index) continue;
    const bytes = attrs.local ?? attrs.address;
    if (bytes === undefined || (data.family !== 2 && data.family !== 10)) continue;
    const address = formatIp(bytes);
    const prefixLen = data.prefixlen ?? 0;
    result.push({
      index: data.index ?? 0,
      family: data.family === 2 ? 4 : 6,
      address,
      prefixLen,
      cidr: `${address}/${prefixLen}`,
      tentative: (attrs.flags ?? data.flags)?.tentative === true,
    });
  }
  return result;
}
