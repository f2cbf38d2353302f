/**
 * KERNEL mechanism, client-facing side of the agent (NSM's forwarder role for a local client):
 * validates the client's interface name and namespace, lets the rest of the chain find and
 * reach the endpoint, then, for an endpoint on this host, builds the vWire between the
 * client's namespace and the endpoint's side (DOWNSTREAM slot, filled by connect). A refresh
 * keeps an existing vWire, and sets the answer's MTU on both its ends when it changed (a vL3
 * endpoint lowers it and asks its clients to refresh). For an endpoint on another host the tunnel client of the remote
 * chain makes the local end, where LOCAL_TARGET (set here) says.
 * Failure after the endpoint answered closes the endpoint side again: no half-made vWire.
 * With records, each vWire is recorded; an agent restarted meanwhile takes a vWire back on
 * the connection's next Request (it is not made again), or removes it if that Request fails;
 * vWires nobody asks for are reaped at their expiry (kernelReaper).
 * Placement: as the KERNEL handler of the mechanisms element, before discover/select/connect.
 */
import type { Connection } from '../../api';
import { AgentError } from '../../core/errors';
import { NetworkServiceServer, nextServer } from '../../core/networkservice';
import { noRecords, type Records } from '../../core/records';
import { recordExpiry } from '../../networkservice/utils';
import { DOWNSTREAM, DownstreamSlot } from '../../networkservice/connect';
import { CLS, PAYLOAD } from '../common';
import { LOCAL_TARGET } from '../tunnel/params';
import { kernelSide } from './params';
import { createVethPair, deleteVethEnd, requireNetns, setVethMtu, vethExists, VethPair } from './vwire';

export interface KernelVWire {
  id: string;
  pair: VethPair;
  /** The MTU set on both ends (undefined: the default, or unknown for a vWire taken back). */
  mtu?: number;
}

export interface KernelServerOptions {
  /** Called after a vWire is made or removed; for status and persistence. */
  onChange?: (id: string, vwire: KernelVWire | undefined) => void;
  /** Where vWires are recorded for a restarted agent, by connection id. */
  records?: Records<VethRecord>;
}

export interface VethRecord {
  expires: number;
  client: { netns: string; ifname: string };
  endpoint: { netns: string; ifname: string };
}

/** Deletes a recorded veth pair, through whichever end is still there. */
async function deleteRecorded(r: VethRecord): Promise<void> {
  for (const end of [r.client, r.endpoint]) {
    let ns;
    try {
      ns = requireNetns(end.netns);
    } catch {
      continue;
    }
    try {
      if (await deleteVethEnd({ netns: ns, ifname: end.ifname })) return;
    } finally {
      ns.close();
    }
  }
}

/** The reaper for veth records (StateStore kind options). */
export const kernelReaper = {
  expiresOf: (r: VethRecord) => r.expires,
  reap: (_key: string, r: VethRecord) => deleteRecorded(r),
};

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
  const records = opts.records ?? noRecords<VethRecord>();
  const record = (id: string, pair: VethPair, conn: Connection, now: number) =>
    records.put(id, {
      expires: recordExpiry(conn, now),
      client: { netns: pair.client.netns.path, ifname: pair.client.ifname },
      endpoint: { netns: pair.endpoint.netns.path, ifname: pair.endpoint.ifname },
    });

  /** The vWire of `id` a previous run left, if both ends are still there. */
  const adopt = async (id: string): Promise<KernelVWire | undefined> => {
    const r = records.claim(id);
    if (!r) return undefined;
    let pair: VethPair | undefined;
    try {
      pair = { client: { netns: requireNetns(r.client.netns), ifname: r.client.ifname }, endpoint: { netns: requireNetns(r.endpoint.netns), ifname: r.endpoint.ifname } };
      if ((await vethExists(pair.client)) && (await vethExists(pair.endpoint))) return { id, pair };
    } catch {
      /* a namespace is gone */
    }
    if (pair) closePair(pair);
    await deleteRecorded(r).catch(() => {});
    records.delete(id);
    return undefined;
  };

  return {
    vwires: () => active,

    async request(ctx, req) {
      const conn: Connection = req.connection ?? {};
      const id = conn.id ?? '';
      const want = kernelSide(conn.mechanism);
      let existing = active.get(id);
      const adopted = existing ? undefined : await adopt(id);
      if (adopted) {
        existing = adopted;
        active.set(id, adopted);
        ctx.log.info('vwire taken back', { id, ifname: adopted.pair.client.ifname });
      }
      const clientNs = existing ? undefined : requireNetns(want.netns);
      const slot: DownstreamSlot = {};
      let out: Connection;
      try {
        out = await nextServer(ctx).request(ctx.with(DOWNSTREAM, slot).with(LOCAL_TARGET, want), req);
      } catch (err) {
        clientNs?.close();
        if (adopted) {
          // Taken back, but its connection failed: remove it as a new one would be.
          active.delete(id);
          await deleteVethEnd(adopted.pair.client).catch(() => false);
          closePair(adopted.pair);
          records.delete(id);
        }
        throw err;
      }
      if (existing && (await vethExists(existing.pair.client).catch(() => false))) {
        const mtu = out.context?.MTU || undefined;
        if (mtu && mtu !== existing.mtu) {
          try {
            await setVethMtu(existing.pair, mtu);
            existing.mtu = mtu;
            ctx.log.info('vwire MTU set', { id, ifname: existing.pair.client.ifname, mtu });
          } catch (err) {
            // The vWire still carries its old MTU; the next refresh tries again.
            ctx.log.warn('vwire MTU not set', { id, ifname: existing.pair.client.ifname, mtu, error: err });
          }
        }
        record(id, existing.pair, conn, ctx.clock.now());
        return out;
      }

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
        pair = { client: { netns: cns, ifname: want.ifname }, endpoint: { netns: requireNetns(ep.netns, slot.conn.network_service_endpoint_name ?? ''), ifname: ep.ifname } };
        await createVethPair(pair, out.context?.ip_context, {
          mtu: out.context?.MTU || undefined,
          payloadIp: (out.payload || PAYLOAD.IP) === PAYLOAD.IP,
          bridges: { client: want.bridge, endpoint: ep.bridge },
        });
      } catch (err) {
        if (pair) closePair(pair);
        else clientNs?.close();
        return undo(err);
      }
      if (existing) closePair(existing.pair);
      const vwire: KernelVWire = { id, pair, mtu: out.context?.MTU || undefined };
      active.set(id, vwire);
      record(id, pair, conn, ctx.clock.now());
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
          records.delete(id);
          opts.onChange?.(id, undefined);
        }
      }
      await nextServer(ctx).close(ctx, conn);
    },
  };
}

