/**
 * mechanismtranslation client (NSM sdk-vpp mechanismtranslation): the hop towards the next
 * agent negotiates its own mechanism. On the way out it drops the upstream mechanism and
 * preferences (the local client's KERNEL request means nothing to the next hop) and puts back
 * the mechanism the next hop chose earlier for this connection (a refresh must name it).
 * The next hop's answer is remembered per connection id until Close, and returned as is:
 * the connect server keeps the upstream mechanism on its side.
 * Placement: first in the client chain to remote hops, before the mechanism clients.
 */
import type { Connection, Mechanism } from '../../api';
import { NetworkServiceClient, nextClient } from '../../core/networkservice';
import { clone } from '../../api/clone';

export interface MechanismTranslationClient extends NetworkServiceClient {
  /** The mechanism the next hop chose for a connection (by this hop's connection id). */
  chosen(id: string): Mechanism | undefined;
}

export function mechanismTranslationClient(): MechanismTranslationClient {
  const chosen = new Map<string, Mechanism>();
  const translate = (conn: Connection): Connection => {
    const out = clone(conn);
    out.mechanism = chosen.get(conn.id ?? '') ?? null;
    return out;
  };
  return {
    chosen: (id) => chosen.get(id),
    async request(ctx, req) {
      const conn = translate(req.connection ?? {});
      const out = await nextClient(ctx).request(ctx, { ...req, connection: conn, mechanism_preferences: [] });
      if (out.mechanism) chosen.set(out.id ?? conn.id ?? '', clone(out.mechanism));
      return out;
    },
    async close(ctx, conn) {
      const down = translate(conn);
      chosen.delete(conn.id ?? '');
      return nextClient(ctx).close(ctx, down);
    },
  };
}
