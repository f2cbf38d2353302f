/**
 * What a relay keeps of each connection it relays, and nothing more: the inner agent's URL (so
 * that a Close reaches the same agent without asking the registry again) and the connection as
 * last answered, in a MonitorHub of its own (the caller's MonitorConnections stream watches the
 * relay, as upstream's nsmgr-proxy serves it). Keyed by the relay's own path segment id.
 *
 * An entry ends with the Close, or when the caller's token expires without a refresh (a caller
 * that went away): then the monitor reports it deleted. The hub is not the agent's own: relayed
 * connections are not this host's vWires (no state records, heal, status or metrics of them).
 */
import type { Connection } from '../../api';
import { MonitorHub } from '../monitor';

/** When a caller's expiry is not known: the longest an entry stays without a refresh. */
const DEFAULT_TTL_MS = 10 * 60_000;

interface Entry {
  url: string;
  timer: NodeJS.Timeout;
}

export class RelayTable {
  readonly hub = new MonitorHub();
  private readonly entries = new Map<string, Entry>();

  /** The inner agent's URL of relayed connection `id`, if it is known. */
  urlOf(id: string): string | undefined {
    return this.entries.get(id)?.url;
  }

  /** Records connection `id` as relayed to `url`, until `expiresAt` (ms) unless refreshed. */
  remember(id: string, url: string, expiresAt: number | undefined, now: number): void {
    const old = this.entries.get(id);
    if (old) clearTimeout(old.timer);
    const ttl = expiresAt !== undefined && expiresAt > now ? expiresAt - now : DEFAULT_TTL_MS;
    const timer = setTimeout(() => this.expire(id), ttl);
    timer.unref();
    this.entries.set(id, { url, timer });
  }

  /** Forgets connection `id` (its Close). */
  forget(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    clearTimeout(e.timer);
    this.entries.delete(id);
  }

  /** The inner agent reports connection `id` down: the caller's monitor sees it. */
  down(id: string): void {
    const known = this.hub.get(id);
    if (known) this.hub.update({ ...known, state: 'DOWN' });
  }

  get size(): number {
    return this.entries.size;
  }

  /** Ends every entry (the agent stops). */
  close(): void {
    for (const e of this.entries.values()) clearTimeout(e.timer);
    this.entries.clear();
  }

  private expire(id: string): void {
    this.entries.delete(id);
    const conn: Connection | undefined = this.hub.get(id);
    if (conn) this.hub.delete(conn);
  }
}
