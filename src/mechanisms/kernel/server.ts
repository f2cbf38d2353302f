/**
 * KERNEL mechanism, client-facing side of the agent (NSM's forwarder role for a local client):
 * validates the client's interface name and namespace, lets the rest of the chain find and
 * reach the endpoint, then, for an endpoint on this host, builds the vWire between the
 * client's namespace and the endpoint's side (DOWNSTREAM slot, filled by connect). A refresh
 * keeps an existing vWire. For an endpoint on another host the tunnel client of the remote
 * chain makes the local end, where LOCAL_TARGET (set here) says.
 * Failure after the endpoint answered closes the endpoint side again: no half-made vWire.
 * Placement: as the KERNEL handler of the mechanisms element, before discover/select/connect.
 */
import type { Connection } from '../../api';
import { AgentError } from '../../core/errors';
import { NetworkServiceServer, nextServer } from '../../core/networkservice';
import { DOWNSTREAM, DownstreamSlot } from '../../networkservice/connect';
import { CLS, PAYLOAD } from '../common';
import { LOCAL_TARGET } from '../tunnel/params';
import { kernelSide } from './params';
import { createVethPair, deleteVethEnd, requireNetns, vethExists, VethPair } from './vwire';

export interface KernelVWire {
  id: string;
  pair: VethPair;
}

export interface KernelServerOptions {
  /** Called after a vWire is made or removed; for status and persistence. */
  onChange?: (id: string, vwire: KernelVWire | undefined) => void;
}

function closePair(pair: VethPair): void {
  for (const ns of [pair.client.netns, pair.endpoint.netns]) {
    try {
      ns.close();
    } catch {
      /* already closed */
    }
  }
}

export function kernelServer(opts: KernelServerOptions = {}): NetworkServiceServer & { vwires(): Map<string, KernelVWire> } {
  const active = new Map<string, KernelVWire>();

  return {
    vwires: () => active,

    async request(ctx, req) {
      const conn: Connection = req.connection ?? {};
      const id = conn.id ?? '';
      const want = kernelSide(conn.mechanism);
      const existing = active.get(id);
      const clientNs = existing ? undefined : requireNetns(want.netns);
      const slot: DownstreamSlot = {};
      let out: Connection;
      try {
        out = await nextServer(ctx).request(ctx.with(DOWNSTREAM, slot).with(LOCAL_TARGET, want), req);
      } catch (err) {
        clientNs?.close();
        throw err;
      }
      if (existing && (await vethExists(existing.pair.client).catch(() => false))) return out;

      const undo = async (err: unknown): Promise<never> => {
        const [closeCtx, done] = ctx.detached(5_000);
        await nextServer(ctx).close(closeCtx, out).catch(() => {});
        done();
        throw err;
      };
      if (slot.conn && !slot.local && slot.conn.mechanism?.cls === CLS.REMOTE) {
        clientNs?.close(); // the remote chain's tunnel client made the local end
        return out;
      }
      if (!slot.conn || !slot.local) {
        clientNs?.close();
        return undo(new AgentError('UNSUPPORTED_MECHANISM', 'the next hop answered with a mechanism the KERNEL side cannot join'));
      }
      let pair: VethPair | undefined;
      try {
        const ep = kernelSide(slot.conn.mechanism);
        const cns = clientNs ?? existing?.pair.client.netns ?? requireNetns(want.netns);
        pair = { client: { netns: cns, ifname: want.ifname }, endpoint: { netns: requireNetns(ep.netns), ifname: ep.ifname } };
        await createVethPair(pair, out.context?.ip_context, {
          mtu: out.context?.MTU || undefined,
          payloadIp: (out.payload || PAYLOAD.IP) === PAYLOAD.IP,
        });
      } catch (err) {
        if (pair) closePair(pair);
        else clientNs?.close();
        return undo(err);
      }
      if (existing) closePair(existing.pair);
      const vwire = { id, pair };
      active.set(id, vwire);
      opts.onChange?.(id, vwire);
      ctx.log.debug('vwire up', { id, netns: want.netns, ifname: want.ifname });
      return out;
    },

    async close(ctx, conn) {
      const id = conn.id ?? '';
      const vwire = active.get(id);
      if (vwire) {
        active.delete(id);
        try {
          const gone = await deleteVethEnd(vwire.pair.client).catch(() => false);
          if (!gone) await deleteVethEnd(vwire.pair.endpoint).catch(() => false);
        } finally {
          closePair(vwire.pair);
          opts.onChange?.(id, undefined);
        }
      }
      await nextServer(ctx).close(ctx, conn);
    },
  };
}

