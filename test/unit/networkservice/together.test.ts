/**
 * The elements assembled as NSM assembles them: an NSC-like client chain calling an
 * endpoint-like server chain in-process. Time is a FakeClock.
 */
import { describe, it, expect } from 'vitest';
import type { ConnectionEvent } from '../../../src/api';
import { toTimestamp } from '../../../src/api/time';
import { FakeClock } from '../../../src/core/clock';
import {
  chainClient,
  chainServer,
  nextClient,
  nextServer,
  serverToClient,
  NetworkServiceClient,
  NetworkServiceServer,
} from '../../../src/core/networkservice';
import { updatePathClient, updatePathServer } from '../../../src/networkservice/updatepath';
import { beginClient, beginServer } from '../../../src/networkservice/begin';
import { metadataClient, metadataServer } from '../../../src/networkservice/metadata';
import { refreshClient } from '../../../src/networkservice/refresh';
import { timeoutServer } from '../../../src/networkservice/timeout';
import { MonitorHub, monitorServer } from '../../../src/networkservice/monitor';
import { trimPathServer } from '../../../src/networkservice/trimpath';
import { fakeCtx, flush, recorder } from './helpers';

const LIFETIME = 60_000;

/** Stands in for updatetoken: the own segment expires LIFETIME from now. */
function tokenClient(clock: FakeClock): NetworkServiceClient {
  return {
    request(ctx, req) {
      const conn = structuredClone(req.connection ?? {});
      const seg = conn.path?.path_segments?.[conn.path.index ?? 0];
      if (seg) seg.expires = toTimestamp(clock.now() + LIFETIME);
      return nextClient(ctx).request(ctx, { ...req, connection: conn });
    },
    close: (ctx, conn) => nextClient(ctx).close(ctx, conn),
  };
}
function tokenServer(clock: FakeClock): NetworkServiceServer {
  return {
    request(ctx, req) {
      const conn = structuredClone(req.connection ?? {});
      const seg = conn.path?.path_segments?.[conn.path.index ?? 0];
      if (seg) seg.expires = toTimestamp(clock.now() + LIFETIME);
      return nextServer(ctx).request(ctx, { ...req, connection: conn });
    },
    close: (ctx, conn) => nextServer(ctx).close(ctx, conn),
  };
}

function setup(clock: FakeClock, opts: { refresh: boolean }) {
  const hub = new MonitorHub();
  const events: ConnectionEvent[] = [];
  hub.subscribe({}, (e) => events.push(e));
  const rec = recorder();
  const endpoint = chainServer(
    updatePathServer('nse'),
    beginServer(),
    tokenServer(clock),
    metadataServer(),
    timeoutServer(),
    monitorServer(hub),
    trimPathServer(),
    rec,
  );
  const client = chainClient(
    updatePathClient('nsc'),
    beginClient(),
    metadataClient(),
    ...(opts.refresh ? [refreshClient()] : []),
    tokenClient(clock),
    serverToClient(endpoint),
  );
  return { hub, events, rec, client };
}

async function run(clock: FakeClock, ms: number, step = 1000): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    clock.advance(step);
    await flush(3);
  }
}

describe('client and endpoint chains together', () => {
  it('refresh keeps the connection alive past many expiry periods; Close leaves nothing behind', async () => {
    const { ctx, clock } = fakeCtx();
    const { hub, events, rec, client } = setup(clock, { refresh: true });
    const conn = await client.request(ctx, { connection: { id: 'nsc-1', network_service: 'ns' } });
    expect(conn.id).toBe('nsc-1');
    expect(conn.path?.path_segments?.map((s) => s.name)).toEqual(['nsc', 'nse']);
    await run(clock, 10 * LIFETIME);
    expect(rec.closes).toHaveLength(0);
    // One request, then a refresh every 0.2 × 60 s = 12 s (index 0 of a two-segment path).
    expect(rec.requests).toHaveLength(1 + (10 * LIFETIME) / 12_000);
    expect(hub.connections()).toHaveLength(1);

    await client.close(ctx, conn);
    expect(rec.closes).toHaveLength(1);
    expect(hub.connections()).toHaveLength(0);
    expect(events.at(-1)?.type).toBe('DELETE');
    expect(clock.pending()).toBe(0);
  });

  it('without refresh the endpoint closes the connection when the client segment expires', async () => {
    const { ctx, clock } = fakeCtx();
    const { hub, events, rec, client } = setup(clock, { refresh: false });
    await client.request(ctx, { connection: { id: 'nsc-1', network_service: 'ns' } });
    await run(clock, LIFETIME - 1000);
    expect(rec.closes).toHaveLength(0);
    await run(clock, 1000);
    expect(rec.closes).toHaveLength(1);
    expect(hub.connections()).toHaveLength(0);
    expect(events.map((e) => e.type)).toEqual(['INITIAL_STATE_TRANSFER', 'UPDATE', 'DELETE']);
    expect(clock.pending()).toBe(0);
  });
});
