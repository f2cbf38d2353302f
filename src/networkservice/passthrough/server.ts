/**
 * passthrough: a hosted endpoint that is one element of a composed service, as upstream NSM's
 * passthrough client (replacelabels + replacensename) inside cmd-nse-firewall-vpp does.
 *
 * Request, for service S:
 * - makes the connection's layer-2 joint (a bridge in the endpoint's namespace) on the first
 *   Request;
 * - requests the same S again, as a client of this agent, with the endpoint's own labels in
 *   place of the client's (so S's matches route by source_selector from element to element)
 *   and, on a refresh, the next endpoint it got the first time: a refresh never moves to
 *   another next hop. That interface joins the bridge;
 * - answers with the next hop's IP context, unchanged (only the last endpoint assigns
 *   addresses) and its own side: an interface in the same namespace joining the same bridge.
 * A Request whose matches lead back to this endpoint in this process fails with NO_CANDIDATES.
 * A first Request that fails leaves nothing: the downstream connection is closed and the
 * bridge removed. Close closes the downstream connection and removes the bridge.
 *
 * With records, a restarted agent takes each passage back on the connection's next Request.
 *
 * Placement: the whole of a passthrough endpoint's kind elements (it sets the KERNEL side).
 */
import { randomBytes } from 'node:crypto';
import type { Connection } from '../../api';
import { Key, type Ctx } from '../../core/ctx';
import { AgentError } from '../../core/errors';
import { NetworkServiceClient, NetworkServiceServer, nextServer } from '../../core/networkservice';
import { noRecords, type Records } from '../../core/records';
import { defaultIfName, kernelMechanism } from '../../mechanisms/kernel/params';
import { clone, recordExpiry } from '../utils';

/** The layer-2 joint of one connection in the endpoint's namespace. */
export interface PassthroughJoint {
  /** Makes it; resolves with the bridge's name. */
  open(): Promise<string>;
  /** True if the bridge is still there. */
  has(bridge: string): Promise<boolean>;
  /** Removes it; one already gone is not an error. */
  close(bridge: string): Promise<void>;
}

export interface PassthroughOptions {
  /** The endpoint's name (for messages). */
  endpoint: string;
  /** The labels it requests with, in place of its client's. */
  labels: Record<string, string>;
  /** The endpoint's namespace file: both sides land there. */
  netns: string;
  /** Requests the next element (this agent's server chain, in-process). */
  next: NetworkServiceClient;
  joint: PassthroughJoint;
  /** Ids of downstream connections; default: `<endpoint>-<random hex>`. */
  newId?: () => string;
  /** Where each passage is recorded (by the served connection's id) for a restarted agent. */
  records?: Records<PassthroughRecord>;
}

/**
 * A passage as recorded: a restarted agent takes it back on the connection's next Request
 * (same bridge, interfaces, downstream id and next hop); one nobody takes back is reaped at
 * its expiry (its bridge deleted).
 */
export interface PassthroughRecord {
  expires: number;
  /** The endpoint's namespace file and the connection's bridge there. */
  netns: string;
  bridge: string;
  upIf: string;
  down: Connection;
}

/**
 * The passthrough endpoints a Request is passing through in this process: a service whose
 * matches lead from an endpoint back to itself fails at once instead of recursing.
 */
const PASSING = new Key<ReadonlySet<string>>('passthrough.passing');

interface Passage {
  /** The connection it serves, as this endpoint's chain last saw it. */
  up: Connection;
  bridge: string;
  /** The client-facing interface (the answer's KERNEL side). */
  upIf: string;
  /** The downstream connection as last answered (its id, path and next endpoint). */
  down: Connection;
}

export interface PassthroughServer extends NetworkServiceServer {
  /** Connections it passes now. */
  size(): number;
  /** The next endpoint of a connection (by this hop's id), for status and tests. */
  nextHopOf(id: string): string | undefined;
  /**
   * The connection served through a downstream one, given the downstream connection as any hop
   * of its path sees it (its first segment is this endpoint's): for a heal to begin upstream.
   */
  servedThrough(down: Connection): Connection | undefined;
}

export function passthroughServer(o: PassthroughOptions): PassthroughServer {
  const passages = new Map<string, Passage>();
  const records = o.records ?? noRecords<PassthroughRecord>();

  /** The passage of `id` a previous run left, if its bridge is still there. */
  const adopt = async (id: string, conn: Connection): Promise<Passage | undefined> => {
    const r = records.claim(id);
    if (!r) return undefined;
    if (await o.joint.has(r.bridge).catch(() => false)) return { up: conn, bridge: r.bridge, upIf: r.upIf, down: r.down };
    records.delete(id);
    return undefined;
  };
  const newId = o.newId ?? (() => `${o.endpoint}-${randomBytes(8).toString('hex')}`);
  const labelText = Object.entries(o.labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');

  /** The Request for the next element: the same service, own labels, pinned next hop. */
  const downstreamRequest = (conn: Connection, p: Passage): Connection => ({
    ...clone(p.down),
    network_service: conn.network_service ?? '',
    labels: { ...o.labels },
    payload: conn.payload ?? '',
    context: clone(conn.context ?? {}),
  });

  const closeDown = async (ctx: Ctx, p: Passage): Promise<void> => {
    try {
      if (p.down.network_service_endpoint_name) await o.next.close(ctx.withoutValues(), p.down);
    } catch (err) {
      ctx.log.warn('passthrough: downstream close failed', { endpoint: o.endpoint, id: p.down.id, error: err });
    }
    await removeJoint(ctx, p.bridge);
  };

  const removeJoint = (ctx: Ctx, bridge: string): Promise<void> =>
    o.joint.close(bridge).catch((err) => ctx.log.warn('passthrough: bridge not removed', { endpoint: o.endpoint, bridge, error: err }));

  return {
    size: () => passages.size,
    nextHopOf: (id) => passages.get(id)?.down.network_service_endpoint_name || undefined,
    servedThrough(down) {
      const first = down.path?.path_segments?.[0];
      if (first?.name !== o.endpoint) return undefined;
      for (const p of passages.values()) if (p.down.id === first.id) return clone(p.up);
      return undefined;
    },

    async request(ctx, req) {
      const conn = clone(req.connection ?? {});
      const id = conn.id ?? '';
      const service = conn.network_service ?? '';
      const passing = ctx.get(PASSING);
      if (passing?.has(o.endpoint)) {
        throw new AgentError('NO_CANDIDATES', `the matches of ${service} lead back to passthrough endpoint ${o.endpoint}`);
      }
      let p = passages.get(id) ?? (await adopt(id, conn));
      const fresh = !p;
      if (!p) {
        const bridge = await o.joint.open();
        p = {
          up: conn,
          bridge,
          upIf: defaultIfName(service),
          down: { id: newId(), mechanism: kernelMechanism({ netns: o.netns, ifname: defaultIfName(service), bridge }) },
        };
      }
      const passage = p;
      let down: Connection;
      try {
        const wanted = downstreamRequest(conn, passage);
        // A call of its own: the values of the Request it serves (its candidates, its vWire's
        // slot) are not the downstream one's.
        const inner = ctx.withoutValues().with(PASSING, new Set([...(passing ?? []), o.endpoint]));
        down = await o.next.request(inner, { connection: wanted, mechanism_preferences: [clone(wanted.mechanism ?? {})] });
      } catch (err) {
        if (fresh) await removeJoint(ctx, passage.bridge);
        throw explain(err, service);
      }
      passage.down = down;
      passage.up = conn;
      passages.set(id, passage);
      records.put(id, { expires: recordExpiry(conn, ctx.clock.now()), netns: o.netns, bridge: passage.bridge, upIf: passage.upIf, down });

      conn.context = clone(down.context ?? {});
      conn.mechanism = kernelMechanism({ netns: o.netns, ifname: passage.upIf, bridge: passage.bridge });
      try {
        return await nextServer(ctx).request(ctx, { ...req, connection: conn });
      } catch (err) {
        if (fresh) {
          passages.delete(id);
          records.delete(id);
          const [closeCtx, done] = ctx.detached(5_000);
          await closeDown(closeCtx, passage);
          done();
        }
        throw err;
      }
    },

    async close(ctx, conn) {
      const id = conn.id ?? '';
      const p = passages.get(id);
      passages.delete(id);
      records.delete(id);
      if (p) await closeDown(ctx, p);
      await nextServer(ctx).close(ctx, conn);
    },
  };

  /** No next element for S from here: the error names the endpoint, the service and its labels. */
  function explain(err: unknown, service: string): AgentError {
    const e = AgentError.from(err);
    if (e.code !== 'NO_CANDIDATES' && e.code !== 'SERVICE_NOT_FOUND') return e;
    return new AgentError(e.code, `passthrough endpoint ${o.endpoint}: no next endpoint of ${service} for its labels {${labelText}} (the service's matches must lead on from them): ${e.message}`, {
      cause: e,
      component: e.component,
    });
  }
}
