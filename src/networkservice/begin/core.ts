/**
 * The machinery shared by the begin server and client: one EventFactory per Connection.id,
 * holding a promise queue, the last successful request and the Ctx it came with.
 *
 * Factory states: 'zero' (never succeeded), 'established', 'down' (a reselect closed the
 * downstream and the new Request has not succeeded yet; the factory keeps the request so heal
 * can retry) and 'closed' (gone from the map; queued events for it are skipped or resubmitted).
 */
import type { Connection, NetworkServiceRequest } from '../../api';
import type { Ctx } from '../../core/ctx';
import { AgentError } from '../../core/errors';
import { clone, raceAbort, Serial, abortError } from '../utils';
import { EventFactory, EventOptions, eventFactorySide, Side, withEventFactory } from './context';
import { mergeConnection } from './merge';

export interface BeginOptions {
  /** Deadline for Close events, external or from the factory (NSM default: 1 minute). */
  closeTimeoutMs?: number;
  /**
   * Deadline for Requests from the factory (refresh, heal). Default: the time the connection's
   * first Request had left when it arrived, or 15 s if it had no deadline.
   */
  requestTimeoutMs?: number;
  /**
   * Connections whose reselect keeps the endpoint name (NSM's ReselectWithSameEndpointFunc,
   * as vL3 endpoints mesh with a peer by name), by connection id.
   */
  keepsEndpoint?: (id: string) => boolean;
}

export const DEFAULT_CLOSE_TIMEOUT_MS = 60_000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 15_000;

/** The element after begin: a server or a client (the two have the same shape). */
export interface Downstream {
  request(ctx: Ctx, req: NetworkServiceRequest): Promise<Connection>;
  close(ctx: Ctx, conn: Connection): Promise<void>;
}

type State = 'zero' | 'established' | 'down' | 'closed';

function reselectForm(req: NetworkServiceRequest, keepEndpoint = false): NetworkServiceRequest {
  return {
    ...req,
    connection: {
      ...(req.connection ?? {}),
      mechanism: null,
      network_service_endpoint_name: keepEndpoint ? (req.connection?.network_service_endpoint_name ?? '') : '',
      state: 'RESELECT_REQUESTED',
    },
  };
}

class Factory implements EventFactory {
  state: State = 'zero';
  readonly serial = new Serial();
  /** Last successful request, its connection replaced by the connection the chain returned. */
  stored: NetworkServiceRequest | undefined;
  /**
   * Client only: what the merge needs of the connection last returned to an external caller
   * (its endpoint name and context; shared with `stored` of then, which is never mutated).
   */
  returned: Pick<Connection, 'network_service_endpoint_name' | 'context'> | undefined;
  readonly requestTimeoutMs: number;

  constructor(
    private readonly owner: BeginCore,
    readonly id: string,
    /** The Ctx of the last external Request: its values (not its signal) serve later events. */
    public valuesCtx: Ctx,
    public next: Downstream,
  ) {
    const left = valuesCtx.remaining();
    this.requestTimeoutMs =
      owner.opts.requestTimeoutMs ?? (Number.isFinite(left) && left > 0 ? left : DEFAULT_REQUEST_TIMEOUT_MS);
  }

  isCurrent(): boolean {
    return this.owner.current(this.id) === this;
  }

  forget(): void {
    this.state = 'closed';
    this.owner.forget(this);
  }

  /** A Ctx for an event: the stored values, this factory, a fresh deadline, no inherited abort. */
  eventCtx(ms: number, from: Ctx = this.valuesCtx): [Ctx, () => void] {
    const [c, cancel] = from.detached(ms);
    return [withEventFactory(c, this, this.owner.side), cancel];
  }

  async closeDownstream(from?: Ctx): Promise<AgentError | undefined> {
    const conn = this.stored?.connection;
    if (!conn) return undefined;
    const [ctx, cancel] = this.eventCtx(this.owner.closeTimeoutMs, from);
    try {
      await this.next.close(ctx, clone(conn));
      return undefined;
    } catch (err) {
      const e = AgentError.from(err);
      ctx.log.warn('begin: close of the previous connection failed', { id: this.id, err: e.message });
      return e;
    } finally {
      cancel();
    }
  }

  succeeded(req: NetworkServiceRequest, conn: Connection, forcedUp: boolean): void {
    const stored = clone({ ...req, connection: conn });
    if (forcedUp && stored.connection) stored.connection.state = 'UP';
    this.stored = stored;
    this.state = 'established';
  }

  request(opts: EventOptions = {}): Promise<AgentError | undefined> {
    const job = this.serial.run(async (): Promise<AgentError | undefined> => {
      if (!this.isCurrent() || !this.stored || (this.state !== 'established' && this.state !== 'down')) return undefined;
      if (opts.cancel?.aborted) return undefined;
      let req = clone(this.stored);
      if (opts.reselect && this.state === 'established') {
        await this.closeDownstream();
        this.state = 'down';
      }
      if (this.state === 'down') req = reselectForm(req, this.owner.opts.keepsEndpoint?.(this.id));
      const [ctx, cancel] = this.eventCtx(this.requestTimeoutMs);
      try {
        const conn = await this.next.request(ctx, req);
        this.succeeded(req, conn, true);
        return undefined;
      } catch (err) {
        if (this.state !== 'established' && this.state !== 'down') this.forget();
        return AgentError.from(err);
      } finally {
        cancel();
      }
    });
    return job.catch((err: unknown) => AgentError.from(err));
  }

  close(opts: EventOptions = {}): Promise<AgentError | undefined> {
    const job = this.serial.run(async (): Promise<AgentError | undefined> => {
      if (!this.isCurrent() || !this.stored) return undefined;
      if (opts.cancel?.aborted) return undefined;
      const err = this.state === 'established' ? await this.closeDownstream() : undefined;
      this.forget();
      return err;
    });
    return job.catch((err: unknown) => AgentError.from(err));
  }
}

export class BeginCore {
  private readonly factories = new Map<string, Factory>();
  readonly closeTimeoutMs: number;

  constructor(
    readonly side: Side,
    readonly opts: BeginOptions,
  ) {
    this.closeTimeoutMs = opts.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
  }

  /**
   * Already inside an event of this chain: a server chain continued by a client chain begins
   * at the server's begin, so a client begin passes through under any begin. A server begin
   * passes through only under another server begin: under a client begin it is the next hop
   * (a server chain called in-process, standing in for a gRPC call) and keeps its own state.
   */
  private passThrough(ctx: Ctx): boolean {
    const outer = eventFactorySide(ctx);
    return outer !== undefined && (this.side === 'client' || outer === 'server');
  }

  current(id: string): Factory | undefined {
    return this.factories.get(id);
  }

  forget(f: Factory): void {
    if (this.factories.get(f.id) === f) this.factories.delete(f.id);
  }

  /** Connections with state in this begin; for tests and diagnostics. */
  get size(): number {
    return this.factories.size;
  }

  async request(ctx: Ctx, req: NetworkServiceRequest, next: Downstream): Promise<Connection> {
    const id = req.connection?.id;
    if (!id) throw new AgentError('INVALID_ARGUMENT', 'connection id must not be zero valued');
    if (this.passThrough(ctx)) return next.request(ctx, req);
    return this.submit(ctx, req, next, id);
  }

  private submit(ctx: Ctx, req: NetworkServiceRequest, next: Downstream, id: string): Promise<Connection> {
    let f = this.factories.get(id);
    if (!f) {
      f = new Factory(this, id, ctx, next);
      this.factories.set(id, f);
    }
    const factory = f;
    const job = factory.serial.run(async (): Promise<Connection> => {
      if (!factory.isCurrent()) return this.submit(ctx, req, next, id);
      if (ctx.signal.aborted) {
        if (factory.state === 'zero') factory.forget();
        throw abortError(ctx);
      }
      if (
        this.side === 'server' &&
        factory.state === 'established' &&
        req.connection?.state === 'RESELECT_REQUESTED'
      ) {
        ctx.log.info('begin: closing the connection for RESELECT_REQUESTED', { id });
        await factory.closeDownstream(ctx);
        factory.state = 'closed';
      }
      let r = req;
      if (this.side === 'client') {
        r = { ...req, connection: mergeConnection(factory.returned, req.connection ?? {}, factory.stored?.connection ?? undefined) };
      }
      // The downstream was closed for a reselect that has not succeeded yet: keep reselecting.
      if (factory.state === 'down') r = reselectForm(r, this.opts.keepsEndpoint?.(id));
      let conn: Connection;
      try {
        conn = await next.request(withEventFactory(ctx, factory, this.side), r);
      } catch (err) {
        if (factory.state !== 'established' && factory.state !== 'down') factory.forget();
        throw err;
      }
      if (this.side === 'server') conn = { ...conn, state: 'UP' };
      factory.succeeded(r, conn, false);
      if (this.side === 'client') {
        const c = factory.stored?.connection;
        factory.returned = { network_service_endpoint_name: c?.network_service_endpoint_name ?? '', context: c?.context ?? null };
      }
      factory.valuesCtx = ctx;
      factory.next = next;
      return conn;
    });
    return raceAbort(ctx, job);
  }

  async close(ctx: Ctx, conn: Connection, next: Downstream): Promise<void> {
    if (this.passThrough(ctx)) return next.close(ctx, conn);
    const factory = this.factories.get(conn.id ?? '');
    // Nothing known about this id: nothing to undo (NSM begin does not call next either).
    if (!factory) return;
    const err = await factory.serial.run(async (): Promise<AgentError | undefined> => {
      if (!factory.isCurrent() || !factory.stored) return undefined;
      // Close always uses the last connection the chain returned, and a fresh deadline:
      // the caller's ctx may be cancelled already.
      const e = factory.state === 'established' ? await factory.closeDownstream(ctx) : undefined;
      factory.forget();
      return e;
    });
    if (err) throw err;
  }
}
