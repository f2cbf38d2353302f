/**
 * excludedprefixes, client side (what upstream's excludedprefixes client does for cmd-nsc,
 * here in the agent that is the client's forwarder): a connection never gets addresses that
 * overlap what its client's namespace already uses. Each Request carries, in
 * `ip_context.excluded_prefixes`, the addresses of the other connections into the same
 * namespace and the namespace's own connected prefixes (for `host`: the host's), besides
 * what it carried already; the endpoint's IPAM allocates outside them.
 *
 * - The endpoint cannot (ADDRESS_OVERLAP from its pool): the error goes back with, for each
 *   prefix it names, whose it is here (another connection, or an interface).
 * - The endpoint answers a new connection with addresses inside them anyway (it ignores
 *   excluded prefixes), other than those the Request carried: the connection is closed again
 *   (nothing of it stays) and the Request fails with ADDRESS_OVERLAP naming the address, the
 *   prefix, the endpoint and whose it is.
 *
 * Placement: in the KERNEL handler of the server chain, first (before anything is made).
 */
import type { Connection } from '../../api';
import type { Ctx } from '../../core/ctx';
import { AgentError } from '../../core/errors';
import { NetworkServiceServer, nextServer } from '../../core/networkservice';
import { formatPrefix, overlaps, parsePrefix, type Prefix } from '../ipam/cidr';

export interface ClientSide {
  /** The namespace file. */
  netns: string;
  /** Equal for two connections into the same namespace (whatever path names it). */
  key: string;
  ifname: string;
}

export interface ExcludedPrefixesOptions {
  /** Where a connection's client side is; undefined: not a connection this element looks after. */
  clientSide(conn: Connection): ClientSide | undefined;
  /**
   * The namespace's connected prefixes, but for those of interface `skip` (the connection's
   * own); the addresses in `known` may be left out too (they are accounted for already).
   */
  connected(netns: string, skip: string, known: ReadonlySet<string>): Promise<{ prefix: string; ifname: string }[]>;
}

/** A prefix this namespace uses, and whose it is (for messages). */
interface Used {
  prefix: string;
  parsed: Prefix;
  whose: string;
}

interface Known {
  key: string;
  /** The id its client knows it by. */
  name: string;
  addrs: string[];
}

const clientIdOf = (conn: Connection) => conn.path?.path_segments?.[0]?.id || conn.id || '';

function addressesOf(conn: Connection): string[] {
  const ipc = conn.context?.ip_context;
  return [...(ipc?.src_ip_addrs ?? []), ...(ipc?.dst_ip_addrs ?? [])];
}

export function excludedPrefixesServer(opts: ExcludedPrefixesOptions): NetworkServiceServer {
  const known = new Map<string, Known>();

  /** What the namespace of `side` uses, but for connection `id`. */
  const usedBy = async (ctx: Ctx, id: string, side: ClientSide): Promise<Used[]> => {
    const used: Used[] = [];
    const add = (prefix: string, whose: string) => {
      const parsed = parsePrefix(prefix);
      if (!parsed) return;
      const text = formatPrefix(parsed);
      if (!used.some((u) => u.prefix === text)) used.push({ prefix: text, parsed, whose });
    };
    const accounted = new Set<string>();
    for (const [otherId, k] of known) {
      if (k.key !== side.key) continue;
      for (const a of k.addrs) {
        accounted.add(a);
        if (otherId !== id) add(a, `connection ${k.name}`);
      }
    }
    try {
      for (const c of await opts.connected(side.netns, side.ifname, accounted)) add(c.prefix, `interface ${c.ifname}`);
    } catch (err) {
      // A namespace that is gone fails the Request further on, with its own error.
      ctx.log.debug('excludedprefixes: namespace not read', { netns: side.netns, error: err });
    }
    return used;
  };

  return {
    async request(ctx, req) {
      const conn = req.connection ?? {};
      const side = opts.clientSide(conn);
      if (!side) return nextServer(ctx).request(ctx, req);
      const id = conn.id ?? '';
      const used = await usedBy(ctx, id, side);
      const ipc = { ...(conn.context?.ip_context ?? {}) };
      const excluded = [...(ipc.excluded_prefixes ?? [])];
      for (const u of used) if (!excluded.includes(u.prefix)) excluded.push(u.prefix);
      ipc.excluded_prefixes = excluded;
      const sent = { ...req, connection: { ...conn, context: { ...(conn.context ?? {}), ip_context: ipc } } };

      let out: Connection;
      try {
        out = await nextServer(ctx).request(ctx, sent);
      } catch (err) {
        const e = AgentError.from(err);
        if (e.code !== 'ADDRESS_OVERLAP') throw err;
        const named = used.filter((u) => e.message.includes(u.prefix)).map((u) => `${u.prefix} is ${u.whose}'s`);
        const here = named.length ? `; in network namespace ${side.netns}: ${named.join(', ')}` : '';
        throw new AgentError('ADDRESS_OVERLAP', `connection ${clientIdOf(conn)}: ${e.message}${here}`, { cause: err, component: e.component });
      }

      if (!known.has(id)) {
        // Addresses the Request carried are the client's own choice (a vL3 router asks for its own).
        const asked = new Set(addressesOf(conn));
        for (const a of addressesOf(out)) {
          if (asked.has(a)) continue;
          const p = parsePrefix(a);
          const hit = p && used.find((u) => overlaps(u.parsed, p));
          if (!hit) continue;
          const [closeCtx, done] = ctx.detached(5_000);
          await nextServer(ctx).close(closeCtx, out).catch(() => {});
          done();
          throw new AgentError(
            'ADDRESS_OVERLAP',
            `connection ${clientIdOf(conn)}: endpoint ${out.network_service_endpoint_name || '(unnamed)'} gave address ${a}, which overlaps ${hit.prefix} (${hit.whose}) in network namespace ${side.netns}; the connection was closed`,
          );
        }
      }
      known.set(id, { key: side.key, name: clientIdOf(out) || clientIdOf(conn), addrs: addressesOf(out) });
      return out;
    },

    async close(ctx, conn) {
      known.delete(conn.id ?? '');
      await nextServer(ctx).close(ctx, conn);
    },
  };
}
