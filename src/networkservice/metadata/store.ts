/** The per-id store behind the metadata server and client elements. */
import type { Connection, NetworkServiceRequest } from '../../api';
import type { Ctx } from '../../core/ctx';
import { ConnectionMetadata, metadataOrigin, Side, withMetadata } from './context';

interface Next {
  request(ctx: Ctx, req: NetworkServiceRequest): Promise<Connection>;
  close(ctx: Ctx, conn: Connection): Promise<void>;
}

export class MetadataStore {
  private readonly byId = new Map<string, ConnectionMetadata>();

  constructor(private readonly side: Side) {}

  private inherits(ctx: Ctx): boolean {
    const outer = metadataOrigin(ctx);
    return outer !== undefined && (this.side === 'client' || outer === 'server');
  }

  async request(ctx: Ctx, req: NetworkServiceRequest, next: Next): Promise<Connection> {
    if (this.inherits(ctx)) return next.request(ctx, req);
    const id = req.connection?.id ?? '';
    const existing = this.byId.get(id);
    const md = existing ?? new ConnectionMetadata(this.side);
    if (!existing) this.byId.set(id, md);
    try {
      return await next.request(withMetadata(ctx, md), req);
    } catch (err) {
      // A failed first Request leaves nothing behind; a failed refresh keeps the state.
      if (!existing && this.byId.get(id) === md) this.byId.delete(id);
      throw err;
    }
  }

  async close(ctx: Ctx, conn: Connection, next: Next): Promise<void> {
    if (this.inherits(ctx)) return next.close(ctx, conn);
    const id = conn.id ?? '';
    const md = this.byId.get(id) ?? new ConnectionMetadata(this.side);
    this.byId.delete(id);
    // Later elements still see their state while they undo it.
    await next.close(withMetadata(ctx, md), conn);
  }

  /** Connections with metadata; for tests and diagnostics. */
  get size(): number {
    return this.byId.size;
  }
}
