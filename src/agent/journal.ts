/**
 * What status shows of a connection beyond the connection itself, gathered as the chains run:
 * when this agent first saw it, the next hop's URL it was dialled at, and its last heal.
 * Entries go with their connection.
 */
import type { ConnectionEvent } from '../api';
import type { Clock } from '../core/clock';
import type { NetworkServiceClient } from '../core/networkservice';
import { nextClient } from '../core/networkservice';
import type { HealReport } from '../networkservice/heal';
import { clientURL } from '../networkservice/clienturl';

/** A connection's last heal, and how many heals it had since this agent started. */
export interface LastHeal extends HealReport {
  count: number;
}

export class ConnectionJournal {
  private readonly firstSeen = new Map<string, number>();
  private readonly nextHops = new Map<string, string>();
  private readonly heals = new Map<string, LastHeal>();

  constructor(private readonly clock: Clock) {}

  /** Follows the server chain's monitor events (by this agent's connection id). */
  follow(event: ConnectionEvent): void {
    for (const [key, conn] of Object.entries(event.connections ?? {})) {
      const id = conn.id || key;
      if (event.type === 'DELETE') {
        this.firstSeen.delete(id);
        this.nextHops.delete(id);
      } else if (!this.firstSeen.has(id)) this.firstSeen.set(id, this.clock.now());
    }
  }

  /** The heal client's reports (by the held connection's own id). */
  healed(id: string, report: HealReport | undefined): void {
    if (!report) {
      this.heals.delete(id);
      return;
    }
    const prev = this.heals.get(id);
    const same = prev && prev.started === report.started && prev.trigger === report.trigger;
    this.heals.set(id, { ...report, count: (prev?.count ?? 0) + (same ? 0 : 1) });
  }

  /**
   * A client element for the chain to other hosts: records the URL each connection's next hop
   * was dialled at (chosen by discover), until Close.
   */
  nextHopRecorder(): NetworkServiceClient {
    return {
      request: async (ctx, req) => {
        const conn = await nextClient(ctx).request(ctx, req);
        const url = clientURL(ctx);
        const id = conn.id || req.connection?.id || '';
        if (url && id) this.nextHops.set(id, url.href);
        return conn;
      },
      close: async (ctx, conn) => {
        this.nextHops.delete(conn.id ?? '');
        return nextClient(ctx).close(ctx, conn);
      },
    };
  }

  since(id: string): number | undefined {
    return this.firstSeen.get(id);
  }

  nextHop(id: string): string | undefined {
    return this.nextHops.get(id);
  }

  lastHeal(id: string): LastHeal | undefined {
    return this.heals.get(id);
  }
}
