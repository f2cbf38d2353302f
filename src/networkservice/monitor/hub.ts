/**
 * MonitorHub: the connections a server has returned, keyed by its own connection id, and the
 * MonitorConnections subscribers (NSM monitor_connection_server.go).
 *
 * - subscribe() first delivers one INITIAL_STATE_TRANSFER with every matching connection
 *   (possibly none), synchronously, then each later UPDATE / DELETE restricted to the matching
 *   connections. Events with no matching connection are not delivered.
 * - UPDATE stores the connections, DELETE removes them; both are then fanned out.
 * - Subscribers get their own copies. A subscriber whose callback throws is dropped.
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

export class MonitorHub {
  private readonly conns = new Map<string, Connection>();
  private readonly subs = new Set<Subscriber>();

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
    for (const c of conns) {
      const id = c.id ?? '';
      if (type === 'UPDATE') this.conns.set(id, clone(c));
      else this.conns.delete(id);
    }
    for (const sub of [...this.subs]) {
      const matching = filtered(conns, sub.selector);
      if (Object.keys(matching).length === 0) continue;
      this.deliver(sub, { type, connections: matching });
    }
  }

  subscribe(selector: MonitorScopeSelector | null | undefined, onEvent: (event: ConnectionEvent) => void): () => void {
    const sub: Subscriber = { selector: selector ? clone(selector) : selector, onEvent };
    this.subs.add(sub);
    this.deliver(sub, { type: 'INITIAL_STATE_TRANSFER', connections: filtered(this.conns.values(), sub.selector) });
    return () => {
      this.subs.delete(sub);
    };
  }

  /** The stored connections (copies) that match selector (all without one). */
  connections(selector?: MonitorScopeSelector | null): Connection[] {
    return [...this.conns.values()].filter((c) => matchesSelector(c, selector)).map((c) => clone(c));
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
      this.subs.delete(sub);
    }
  }
}
