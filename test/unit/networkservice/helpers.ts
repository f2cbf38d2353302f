/** Small chain elements and utilities for networkservice unit tests (NSM utils/checks, count, inject). */
import type { Connection, NetworkServiceRequest } from '../../../src/api';
import { toTimestamp } from '../../../src/api/time';
import { FakeClock } from '../../../src/core/clock';
import { Ctx } from '../../../src/core/ctx';
import { AgentError } from '../../../src/core/errors';
import { NetworkServiceServer, NetworkServiceClient, nextServer, nextClient } from '../../../src/core/networkservice';

/** Lets pending promise callbacks and timers-of-zero run. */
export async function flush(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((r) => setImmediate(r));
}

export function fakeCtx(clock = new FakeClock()): { ctx: Ctx; clock: FakeClock } {
  return { ctx: Ctx.background({ clock }), clock };
}

export interface Recorded {
  requests: NetworkServiceRequest[];
  closes: Connection[];
  ctxs: Ctx[];
}

/** Records what reaches it (deep copies), then continues. `onRequest` may change the answer. */
export function recorder(onRequest?: (conn: Connection, ctx: Ctx) => Connection): NetworkServiceServer & Recorded {
  const rec: Recorded = { requests: [], closes: [], ctxs: [] };
  return Object.assign(rec, {
    async request(ctx: Ctx, req: NetworkServiceRequest): Promise<Connection> {
      rec.requests.push(structuredClone(req));
      rec.ctxs.push(ctx);
      const conn = await nextServer(ctx).request(ctx, req);
      return onRequest ? onRequest(conn, ctx) : conn;
    },
    async close(ctx: Ctx, conn: Connection): Promise<void> {
      rec.closes.push(structuredClone(conn));
      rec.ctxs.push(ctx);
      await nextServer(ctx).close(ctx, conn);
    },
  });
}

export function clientRecorder(onRequest?: (conn: Connection, ctx: Ctx) => Connection): NetworkServiceClient & Recorded {
  const rec: Recorded = { requests: [], closes: [], ctxs: [] };
  return Object.assign(rec, {
    async request(ctx: Ctx, req: NetworkServiceRequest): Promise<Connection> {
      rec.requests.push(structuredClone(req));
      rec.ctxs.push(ctx);
      const conn = await nextClient(ctx).request(ctx, req);
      return onRequest ? onRequest(conn, ctx) : conn;
    },
    async close(ctx: Ctx, conn: Connection): Promise<void> {
      rec.closes.push(structuredClone(conn));
      rec.ctxs.push(ctx);
      await nextClient(ctx).close(ctx, conn);
    },
  });
}

/** Fails the requests whose (1-based) numbers are listed, with `code`. */
export function failOn(numbers: number[] | 'always', code: AgentError['code'] = 'UNAVAILABLE'): NetworkServiceServer & { calls: number } {
  const el = {
    calls: 0,
    async request(ctx: Ctx, req: NetworkServiceRequest): Promise<Connection> {
      el.calls++;
      if (numbers === 'always' || numbers.includes(el.calls)) throw new AgentError(code, `injected failure ${el.calls}`);
      return nextServer(ctx).request(ctx, req);
    },
    close: (ctx: Ctx, conn: Connection) => nextServer(ctx).close(ctx, conn),
  };
  return el;
}

/** A server that holds each request until released, to observe ordering. */
export function gate(log: string[]): NetworkServiceServer & { release(id: string): void; waiting(): string[] } {
  const pending = new Map<string, () => void>();
  let n = 0;
  return {
    async request(ctx, req) {
      const tag = `${req.connection?.id}#${++n}`;
      log.push(`enter ${tag}`);
      await new Promise<void>((resolve) => pending.set(tag, resolve));
      log.push(`exit ${tag}`);
      return nextServer(ctx).request(ctx, req);
    },
    close: (ctx, conn) => nextServer(ctx).close(ctx, conn),
    release(tag: string) {
      const r = pending.get(tag);
      if (!r) throw new Error(`nothing waiting as ${tag}; waiting: ${[...pending.keys()].join(',')}`);
      pending.delete(tag);
      r();
    },
    waiting: () => [...pending.keys()],
  };
}

/** A connection as a client at index 0 would send it, with its own segment expiring at `expires`. */
export function clientConn(id: string, expires: number, extra: Partial<Connection> = {}): Connection {
  return {
    id,
    network_service: 'ns',
    path: { index: 0, path_segments: [{ name: 'nsc', id, expires: toTimestamp(expires) }] },
    ...extra,
  };
}

/** Sets `expires` on every path segment of the answer (as updatetoken would on each hop). */
export function expireAll(at: () => number): (conn: Connection) => Connection {
  return (conn) => ({
    ...conn,
    path: {
      ...conn.path,
      path_segments: (conn.path?.path_segments ?? []).map((s) => ({ ...s, expires: toTimestamp(at()) })),
    },
  });
}
