/**
 * MonitorHub: the connections a server has returned, keyed by its own connection id, and the
 * MonitorConnections subscribers (NSM monitor_connection_server.go).
 *
 * - subscribe() first delivers one INITIAL_STATE_TRANSFER with every matching connection
 *   (possibly none), synchronously, then each later UPDATE / DELETE restricted to the matching
 *   connections. Events with no matching connection are not delivered.
 * - UPDATE stores the connections, DELETE removes them; both are then fanned out.
 * - refreshRequested() sends an UPDATE with a stored connection in state REFRESH_REQUESTED
 *   (its client is to Request it again, as NSM's vl3mtu asks) without storing that state. The
 *   refresh stays pending until the connection's next UPDATE (its next Request answered): a
 *   subscriber that comes in the meantime (a client opens its watch only once its Request is
 *   answered) gets the connection in that state in its INITIAL_STATE_TRANSFER. Asked with
 *   waitMs for a connection not stored yet (its Request is on its way back), the refresh is
 *   sent right after the UPDATE that stores it, if that comes within waitMs.
 * - Subscribers get their own copies. A subscriber whose callback throws is dropped.
 * - Subscribers whose selector names a path segment id (heal's and the downstream monitor's:
 *   one per connection) are indexed by that id, so an event reaches only them and the
 *   unindexed ones: fan-out stays O(path length) per connection, not O(subscribers).
 */
import type { Connection, ConnectionEvent, MonitorScopeSelector } from '../../api';
import { clone } from '../utils';
import { matchesSelector } from './selector';

export type MonitorEventType = 'INITIAL_STATE_TRANSFER' | 'UPDATE' | 'DELETE';

interface Subscriber {
  selector: MonitorScopeSelector | null | undefined;
  onEvent: (event: ConnectionEvent) => void;
}

function filtered(conns: Iterable<Connection>, selector: MonitorScopeSelector | null | undefined): Record<string, Connection> {
  const out: Record<string, Connection> = {};
  for (const c of conns) if (matchesSelector(c, selector)) out[c.id ?? ''] = clone(c);
  return out;
}

/** The segment id a selector requires, if any (its first segment with an id). */
function indexKey(selector: MonitorScopeSelector | null | undefined): string | undefined {
  return (selector?.path_segments ?? []).find((s) => s.id)?.id ?? undefined;
}

export class MonitorHub {
  private readonly conns = new Map<string, Connection>();
  private readonly subs = new Set<Subscriber>();
  /** Subscribers with a segment id in their selector, by that id. */
  private readonly bySegment = new Map<string, Set<Subscriber>>();
  /** Subscribers without one (they see every event). */
  private readonly unindexed = new Set<Subscriber>();
  /** Stored connections with a refresh pending (asked, not Requested again yet). */
  private readonly refreshing = new Set<string>();
  /** Refreshes asked for connections not stored yet: until when they wait, by id. */
  private readonly waiting = new Map<string, number>();
  constructor(private readonly now: () => number = Date.now) {}

  /** The subscribers an event about these connections may concern. */
  private candidates(conns: Connection[]): Set<Subscriber> {
    const out = new Set(this.unindexed);
    for (const c of conns) {
      for (const seg of c.path?.path_segments ?? []) {
        for (const sub of this.bySegment.get(seg.id ?? '') ?? []) out.add(sub);
      }
    }
    return out;
  }

  private remove(sub: Subscriber): void {
    this.subs.delete(sub);
    this.unindexed.delete(sub);
    const key = indexKey(sub.selector);
    if (key === undefined) return;
    const set = this.bySegment.get(key);
    set?.delete(sub);
    if (set?.size === 0) this.bySegment.delete(key);
  }

  /** Stores conn and sends UPDATE (conn as returned to this server's caller). */
  update(conn: Connection): void {
    this.publish('UPDATE', [conn]);
  }

  /** Forgets conn and sends DELETE; the connection in the event has state DOWN. */
  delete(conn: Connection): void {
    this.publish('DELETE', [{ ...conn, state: 'DOWN' }]);
  }

  /** Stores (UPDATE) or forgets (DELETE) the connections, then delivers the event. */
  publish(type: 'UPDATE' | 'DELETE', conns: Connection[]): void {
    const asked: string[] = [];
    for (const c of conns) {
      const id = c.id ?? '';
      this.refreshing.delete(id);
      const until = this.waiting.get(id);
      this.waiting.delete(id);
      if (type === 'UPDATE') {
        this.conns.set(id, clone(c));
        if (until !== undefined && until >= this.now()) asked.push(id);
      } else this.conns.delete(id);
    }
    this.fanOut(type, conns);
    for (const id of asked) this.refreshRequested(id);
  }

  /**
   * Asks the client of the stored connection `id` to Request it again: an UPDATE with it in
   * state REFRESH_REQUESTED, pending until its next UPDATE; the stored connection is unchanged.
   * False if none is stored; with waitMs, the refresh then waits that long for it to be stored.
   */
  refreshRequested(id: string, waitMs?: number): boolean {
    const c = this.conns.get(id);
    if (!c) {
      if (waitMs) {
        const now = this.now();
        for (const [other, until] of this.waiting) if (until < now) this.waiting.delete(other);
        this.waiting.set(id, now + waitMs);
      }
      return false;
    }
    this.refreshing.add(id);
    this.fanOut('UPDATE', [{ ...c, state: 'REFRESH_REQUESTED' }]);
    return true;
  }

  private fanOut(type: 'UPDATE' | 'DELETE', conns: Connection[]): void {
    for (const sub of this.candidates(conns)) {
      if (!this.subs.has(sub)) continue;
      const matching = filtered(conns, sub.selector);
      if (Object.keys(matching).length === 0) continue;
      this.deliver(sub, { type, connections: matching });
    }
  }

  subscribe(selector: MonitorScopeSelector | null | undefined, onEvent: (event: ConnectionEvent) => void): () => void {
    const sub: Subscriber = { selector: selector ? clone(selector) : selector, onEvent };
    this.subs.add(sub);
    const key = indexKey(sub.selector);
    if (key === undefined) this.unindexed.add(sub);
    else {
      let set = this.bySegment.get(key);
      if (!set) this.bySegment.set(key, (set = new Set()));
      set.add(sub);
    }
    const current = this.refreshing.size
      ? [...this.conns.values()].map((c) => (this.refreshing.has(c.id ?? '') ? { ...c, state: 'REFRESH_REQUESTED' as const } : c))
      : this.conns.values();
    this.deliver(sub, { type: 'INITIAL_STATE_TRANSFER', connections: filtered(current, sub.selector) });
    return () => this.remove(sub);
  }

  /** The stored connections (copies) that match selector (all without one). */
  connections(selector?: MonitorScopeSelector | null): Connection[] {
    return [...this.conns.values()].filter((c) => matchesSelector(c, selector)).map((c) => clone(c));
  }

  /**
   * The stored connections themselves, not copies, for a reader that only reads them (the
   * metrics exporter, scraping thousands): an update replaces a stored connection, it never
   * changes one, so what this returns stays as it was.
   */
  stored(): readonly Readonly<Connection>[] {
    return [...this.conns.values()];
  }

  /** The stored connection with this id (a copy). */
  get(id: string): Connection | undefined {
    const c = this.conns.get(id);
    return c ? clone(c) : undefined;
  }

  has(id: string): boolean {
    return this.conns.has(id);
  }

  get subscribers(): number {
    return this.subs.size;
  }

  private deliver(sub: Subscriber, event: ConnectionEvent): void {
    try {
      sub.onEvent(event);
    } catch {
      this.remove(sub);
    }
  }
}
