/**
 * Watching one connection on the next hop's MonitorConnections stream (NSM heal's event loop
 * and the passthrough monitor's downstream subscription), and the downstream monitor client.
 *
 * watchConnection: opens a stream with selector `path_segments: [{id, name}]` of the
 * connection's own segment (the one at path.index: the next hop sees it as its previous
 * segment) and reports the states of that connection only: the segment at our index must
 * carry our id and the event's path index must be ours or ours + 1; a DELETE counts as DOWN.
 * A stream error ends the watch; one with code CANCELLED ends it quietly.
 *
 * monitorDownstreamClient (as NSM's nsmgr follows its next hop's MonitorConnections, so that a
 * heal upstream learns of a broken path): in a client chain to remote hops, keeps one
 * watch per connection id on the URL the Request was sent to. A DOWN or DELETE for the
 * connection, or a broken stream, calls onDown(id, why) once and ends the watch; the next
 * successful Request (a heal from upstream) opens it again, as does a Request that went to
 * another URL (a reselect to another host). Close ends the watch before passing on, so the
 * DELETE the next hop sends for it is never reported. A REFRESH_REQUESTED from the next hop
 * calls onRefresh(id), to be passed on upstream (as NSM's monitor passthrough carries it to
 * the client's upstreamrefresh); the watch goes on.
 *
 * Placement: in the client chain to remote hops, after the element that sets the next-hop URL
 * (clienturl / discover) and before dial.
 */
import { stateName, type Connection, type ConnectionEvent, type MonitorScopeSelector, type State } from '../../api';
import type { Ctx } from '../../core/ctx';
import { AgentError } from '../../core/errors';
import { NetworkServiceClient, nextClient } from '../../core/networkservice';
import { clientURL } from '../clienturl';
import { currentSegment, indexOf } from '../utils';

export type ConnectionState = keyof typeof State;

/** Opens a MonitorConnections stream; the returned function ends it (and no callback runs after). */
export type OpenMonitor = (
  selector: MonitorScopeSelector,
  onEvent: (e: ConnectionEvent) => void,
  onError: (err: AgentError) => void,
) => () => void;

/** The selector of conn's own segment: what the next hop's monitor matches it by. */
export function ownSelector(conn: Connection): MonitorScopeSelector {
  const seg = currentSegment(conn);
  return { path_segments: [{ id: seg?.id ?? conn.id ?? '', name: seg?.name ?? '' }] };
}

/**
 * The states the event carries for the connection whose own segment is `id` at `index`
 * (DELETE → DOWN); empty if the event is about other connections.
 */
export function statesFor(e: ConnectionEvent, id: string, index: number): ConnectionState[] {
  const out: ConnectionState[] = [];
  const deleted = eventType(e) === 'DELETE';
  for (const c of Object.values(e.connections ?? {})) {
    const segs = c.path?.path_segments ?? [];
    const i = c.path?.index ?? 0;
    if (segs[index]?.id !== id || (i !== index && i !== index + 1)) continue;
    out.push(deleted ? 'DOWN' : stateName(c.state));
  }
  return out;
}

const EVENT_TYPES = ['INITIAL_STATE_TRANSFER', 'UPDATE', 'DELETE'] as const;

/** The event type's name (it may arrive as a number from hand-built events). */
export function eventType(e: ConnectionEvent): string {
  return typeof e.type === 'number' ? (EVENT_TYPES[e.type] ?? '') : (e.type ?? '');
}

export interface ConnectionWatch {
  /** The own segment id watched. */
  readonly id: string;
  /** Ends the stream; no callback runs after. Idempotent. */
  stop(): void;
  /** Stopped, broken or cancelled. */
  readonly ended: boolean;
}

export interface WatchHandlers {
  /** A state of the connection (DELETE arrives as DOWN). */
  state(s: ConnectionState, type: string): void;
  /** The stream broke with a code other than CANCELLED; the watch has ended. */
  broken(err: AgentError): void;
}

/** Watches conn (as returned at this position) on a stream opened with `open`. */
export function watchConnection(open: OpenMonitor, conn: Connection, on: WatchHandlers): ConnectionWatch {
  const id = currentSegment(conn)?.id ?? conn.id ?? '';
  const index = indexOf(conn);
  let ended = false;
  let cancel: (() => void) | undefined;
  const stop = () => {
    if (ended) return;
    ended = true;
    cancel?.();
  };
  cancel = open(
    ownSelector(conn),
    (e) => {
      if (ended) return;
      for (const s of statesFor(e, id, index)) {
        if (ended) return;
        on.state(s, eventType(e));
      }
    },
    (err) => {
      if (ended) return;
      stop();
      if (err.code !== 'CANCELLED') on.broken(err);
    },
  );
  // Stopped from a callback during open() (an initial transfer, an immediate error).
  if (ended) cancel();
  return {
    id,
    stop,
    get ended() {
      return ended;
    },
  };
}

/** A Ctx with ctx's values but neither its cancellation nor its deadline: for long-lived streams. */
export function streamCtx(ctx: Ctx): Ctx {
  return ctx.detached(Infinity)[0];
}

export interface MonitorDownstreamOptions {
  /**
   * Opens the MonitorConnections stream of the hop at `url` (the URL the Request went to). The
   * Ctx carries the Request's values, not its cancellation. onError: the stream broke (never
   * called after the returned function was called).
   */
  monitor(
    ctx: Ctx,
    url: URL,
    selector: MonitorScopeSelector,
    onEvent: (e: ConnectionEvent) => void,
    onError: (err: AgentError) => void,
  ): () => void;
  /** The downstream of connection `id` (this position's id) failed. */
  onDown(id: string, why: string): void;
  /** The next hop asks for connection `id` (this position's id) to be Requested again. */
  onRefresh?(id: string): void;
}

interface Entry {
  url: string;
  /** name/id of the own segment watched. */
  segment: string;
  /** Undefined while the stream is being opened. */
  watch: ConnectionWatch | undefined;
  gone: boolean;
}

export function monitorDownstreamClient(
  opts: MonitorDownstreamOptions,
): NetworkServiceClient & { readonly size: number; watching(id: string): boolean } {
  const watches = new Map<string, Entry>();

  const end = (id: string) => {
    const w = watches.get(id);
    if (!w) return;
    watches.delete(id);
    w.gone = true;
    w.watch?.stop();
  };

  return {
    async request(ctx, req) {
      const url = clientURL(ctx);
      const conn = await nextClient(ctx).request(ctx, req);
      const id = conn.id ?? '';
      if (!url || !id) return conn;
      const seg = currentSegment(conn);
      const segment = `${seg?.name ?? ''}/${seg?.id ?? ''}`;
      const old = watches.get(id);
      if (old && old.watch?.ended === false && old.url === url.href && old.segment === segment) return conn;
      end(id);

      const log = ctx.log;
      const sctx = streamCtx(ctx);
      const entry: Entry = { url: url.href, segment, watch: undefined, gone: false };
      const down = (why: string) => {
        if (watches.get(id) !== entry) return;
        end(id);
        log.info('downstream connection failed', { id, url: url.href, why });
        opts.onDown(id, why);
      };
      watches.set(id, entry);
      try {
        entry.watch = watchConnection((sel, onEvent, onError) => opts.monitor(sctx, url, sel, onEvent, onError), conn, {
          state: (s, type) => {
            if (s === 'DOWN') down(type === 'DELETE' ? 'downstream closed the connection' : 'downstream connection is down');
            else if (s === 'REFRESH_REQUESTED' && watches.get(id) === entry) opts.onRefresh?.(id);
          },
          broken: (err) => down(`monitor stream to ${url.host || url.pathname} broke: ${err.message}`),
        });
      } catch (err) {
        // Not watched until the next successful Request; the connection itself is fine.
        if (watches.get(id) === entry) watches.delete(id);
        log.warn('cannot monitor the downstream connection', { id, url: url.href, err: err instanceof Error ? err.message : String(err) });
        return conn;
      }
      // Reported during open (an initial transfer with DOWN, an immediate error): end it now.
      if (entry.gone) entry.watch.stop();
      return conn;
    },
    async close(ctx, conn) {
      end(conn.id ?? '');
      await nextClient(ctx).close(ctx, conn);
    },
    get size() {
      return watches.size;
    },
    watching: (id) => watches.get(id)?.watch?.ended === false,
  };
}
