/**
 * netsvcmonitor server (NSM sdk common/netsvcmonitor, "change NSE dynamically"): after a
 * Request succeeds, the connection's network service is watched in the registry; when the
 * service changes (its `matches` applied anew) and the connection's endpoint no longer
 * matches the connection's labels, the connection is closed through begin, which makes its
 * client heal and reselect an endpoint that matches. Connections whose endpoint still matches
 * are not touched.
 *
 * One watch per service, shared by its connections, from the first connection's Request to
 * the last one's Close; a watch that ends or fails is made again (100 ms, then backing off to
 * 5 s while the registry does not answer). An endpoint that cannot be found is left alone
 * (heal deals with endpoints that go). Services of other domains (`name@domain`) are not
 * watched.
 *
 * Placement: after begin (it closes through begin's EventFactory) and clientinfo (the labels
 * the match sees are the ones discover saw), before discover.
 */
import type { Connection, NetworkService } from '../../api';
import { Ctx } from '../../core/ctx';
import type { Logger } from '../../core/log';
import { NetworkServiceServer, nextServer } from '../../core/networkservice';
import { findAll, type NseRegistry, type NsRegistry } from '../../core/registry';
import { eventFactory, type EventFactory } from '../begin';
import { matchEndpoint } from '../discover/match';

const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 5_000;

interface Watched {
  conn: Connection;
  factory: EventFactory;
  /** Whether its endpoint matched the service as last seen; undefined until first seen. */
  matched?: boolean;
}

interface ServiceWatch {
  conns: Map<string, Watched>;
  stop: AbortController;
  /** The service as the watch last saw it. */
  ns?: NetworkService;
}

export interface NetsvcmonitorOptions {
  ns: NsRegistry;
  nse: NseRegistry;
  /** The Ctx the watches run in (the agent's lifetime); default: one with the Request's clock and logger. */
  background?: () => Ctx;
}

export function netsvcmonitorServer(registry: NetsvcmonitorOptions): NetworkServiceServer {
  const services = new Map<string, ServiceWatch>();

  /**
   * Closes the connections of `w` whose endpoint matched the service and does not match `ns`.
   * A connection first seen not matching (its client named the endpoint: a vL3 peer, a
   * connection pinned to its endpoint) is never closed for it.
   */
  const check = async (ctx: Ctx, ns: NetworkService, w: ServiceWatch, only?: Watched): Promise<void> => {
    const byEndpoint = new Map<string, Watched[]>();
    for (const c of only ? [only] : w.conns.values()) {
      const name = c.conn.network_service_endpoint_name;
      if (name) byEndpoint.set(name, [...(byEndpoint.get(name) ?? []), c]);
    }
    for (const [name, conns] of byEndpoint) {
      const found = await findAll(registry.nse.find(ctx, { network_service_endpoint: { name }, watch: false }));
      const nse = found.map((r) => r.network_service_endpoint).find((e) => e?.name === name);
      if (!nse) continue;
      for (const c of conns) {
        const matched = matchEndpoint(c.conn.labels ?? {}, ns, [nse]).length > 0;
        const before = c.matched;
        c.matched = matched;
        if (matched || !before) continue;
        const id = c.conn.id ?? '';
        if (w.conns.get(id) !== c) continue;
        w.conns.delete(id);
        ctx.log.info('netsvcmonitor: the endpoint no longer matches the changed service, closing', { id, service: ns.name, endpoint: name });
        void c.factory.close().then((err) => {
          if (err) ctx.log.warn('netsvcmonitor: close failed', { id, err: err.message });
        });
      }
    }
  };

  const watch = (base: Ctx, service: string, w: ServiceWatch, log: Logger): void => {
    const [ctx, done] = base.withSignal(w.stop.signal);
    w.stop.signal.addEventListener('abort', done, { once: true });
    void (async () => {
      let wait = RETRY_FIRST_MS;
      while (!w.stop.signal.aborted) {
        try {
          for await (const r of registry.ns.find(ctx, { network_service: { name: service }, watch: true })) {
            wait = RETRY_FIRST_MS;
            const ns = r.network_service;
            if (r.deleted || !ns || ns.name !== service) continue;
            w.ns = ns;
            await check(ctx, ns, w).catch((err) => log.debug('netsvcmonitor: check failed', { service, err }));
          }
        } catch (err) {
          if (w.stop.signal.aborted) return;
          log.debug('netsvcmonitor: watch failed', { service, err });
          wait = Math.min(wait * 2, RETRY_MAX_MS);
        }
        if (w.stop.signal.aborted) return;
        await new Promise((r) => setTimeout(r, wait).unref());
      }
    })();
  };

  const forget = (conn: Connection): void => {
    const service = conn.network_service ?? '';
    const w = services.get(service);
    if (!w?.conns.delete(conn.id ?? '') || w.conns.size) return;
    services.delete(service);
    w.stop.abort();
  };

  return {
    async request(ctx, req) {
      const factory = eventFactory(ctx);
      const out = await nextServer(ctx).request(ctx, req);
      const service = out.network_service ?? '';
      if (!service || service.includes('@') || !out.network_service_endpoint_name) return out;
      let w = services.get(service);
      if (!w) {
        w = { conns: new Map(), stop: new AbortController() };
        services.set(service, w);
        watch(registry.background?.() ?? Ctx.background({ clock: ctx.clock, log: ctx.log }), service, w, ctx.log);
      }
      const id = out.id ?? '';
      const known = w.conns.get(id);
      const c: Watched = { conn: out, factory, ...(known?.matched !== undefined ? { matched: known.matched } : {}) };
      w.conns.set(id, c);
      // Joined a watch that already saw the service: whether it matches now, in the background.
      if (w.ns && c.matched === undefined) {
        const [bg, done] = (registry.background?.() ?? Ctx.background({ clock: ctx.clock, log: ctx.log })).withSignal(w.stop.signal);
        void check(bg, w.ns, w, c)
          .catch((err) => ctx.log.debug('netsvcmonitor: check failed', { service, err }))
          .finally(done);
      }
      return out;
    },
    async close(ctx, conn) {
      forget(conn);
      await nextServer(ctx).close(ctx, conn);
    },
  };
}
