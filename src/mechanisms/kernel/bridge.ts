/**
 * A bridge per connection in a namespace: the layer-2 joint of a passthrough endpoint's two
 * sides (both are KERNEL interfaces naming it in their `bridge` parameter). With nothing else
 * in the namespace, frames cross unchanged; a program there may filter them (an nftables
 * `bridge` table).
 */
import * as sys from '../../sys';
import { AgentError } from '../../core/errors';
import { defaultIfName } from './params';
import { inNetns } from './vwire';

export interface BridgeJoint {
  /** Makes a new bridge (up) in the namespace; resolves with its name. */
  open(): Promise<string>;
  /** True if the bridge is in the namespace. */
  has(bridge: string): Promise<boolean>;
  /** Deletes the bridge; one already gone (or its namespace) is not an error. */
  close(bridge: string): Promise<void>;
}

export function bridgeJoint(netns: string): BridgeJoint {
  return {
    open: () =>
      inNetns(netns, async (ns) => {
        const name = defaultIfName('nsmbr');
        try {
          await sys.createBridge(sys.Rtnl.for(ns), name);
        } catch (err) {
          throw AgentError.wrap(err, `create bridge ${name} in ${netns}`, 'DATAPLANE');
        }
        return name;
      }),
    has: (bridge) => inNetns(netns, async (ns) => (await sys.getLink(sys.Rtnl.for(ns), bridge)) !== undefined),
    close: async (bridge) => {
      try {
        await inNetns(netns, async (ns) => {
          const rtnl = sys.Rtnl.for(ns);
          const link = await sys.getLink(rtnl, bridge);
          if (link) await sys.deleteLink(rtnl, link.index);
        });
      } catch (err) {
        if (AgentError.from(err).code === 'NETNS_NOT_FOUND') return;
        throw AgentError.wrap(err, `delete bridge ${bridge} in ${netns}`, 'DATAPLANE');
      }
    },
  };
}

/** The reaper of passthrough records (StateStore kind options): the bridge goes at expiry. */
export const passthroughReaper = {
  expiresOf: (r: { expires: number }) => r.expires,
  reap: (_key: string, r: { netns: string; bridge: string }) => bridgeJoint(r.netns).close(r.bridge),
};
