/**
 * What the agent uses of the `netlink` package, taken from its modules rather than its index.
 * The index also evaluates the nl80211 and WireGuard struct tables and loads the package's
 * native socket binding, none of which rtnl (its own socket, see rtnl.ts) needs; the generic
 * netlink socket (kernel WireGuard) loads the socket half on its first use.
 */
import type { GenericNetlinkSocket } from 'netlink/dist/genl/genl';

export { FlagsGet, FlagsNew } from 'netlink/dist/constants';
export { AttrStream, putString, putU32, putU8, readS32, readU16, readU32, writeU16, writeU32 } from 'netlink/dist/structs';
export * as rt from 'netlink/dist/rt/structs';
export * as genl from 'netlink/dist/genl/structs';
export type { GenericNetlinkSocket };

/** A generic netlink socket in the calling thread's current network namespace. */
export function createGenericNetlink(): GenericNetlinkSocket {
  return (require('netlink/dist/genl/genl') as typeof import('netlink/dist/genl/genl')).createGenericNetlink();
}
