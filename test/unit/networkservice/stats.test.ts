// The stats element: segment metrics filled on later Requests only, with upstream's keys; timing reported.
import { describe, expect, it } from 'vitest';
import type { Connection } from '../../../src/api';
import { Ctx } from '../../../src/core/ctx';
import { chainServer } from '../../../src/core/networkservice';
import { statsServer } from '../../../src/networkservice/stats';
import { updatePathServer } from '../../../src/networkservice/updatepath';

describe('statsServer', () => {
  it('fills this hop segment metrics with the figures on a refresh, not on the first Request', async () => {
    const known = new Set<string>();
    const timed: [string, number][] = [];
    let reads = 0;
    const chain = chainServer(
      updatePathServer('agent-a', { requireConnectionId: true }),
      statsServer({
        known: (id) => known.has(id),
        figures: async () => {
          reads++;
          return { server: { rxBytes: 1, txBytes: 2, rxPackets: 3, txPackets: 4, drops: 5 } };
        },
        requested: (conn, s) => timed.push([conn.id ?? '', s]),
      }),
    );
    const first = await chain.request(Ctx.background(), { connection: { id: 'nsc-1', path: { index: 0, path_segments: [{ id: 'nsc-1', name: 'nsc' }] } } });
    expect(reads).toBe(0);
    expect(first.path?.path_segments?.[1]?.metrics ?? {}).toEqual({});
    const hopId = first.path?.path_segments?.[1]?.id ?? '';
    expect(timed).toEqual([[hopId, expect.any(Number)]]);
    known.add(hopId);

    const again = await chain.request(Ctx.background(), { connection: first as Connection });
    expect(reads).toBe(1);
    expect(again.path?.path_segments?.[1]?.metrics).toEqual({ server_rx_bytes: '1', server_tx_bytes: '2', server_rx_packets: '3', server_tx_packets: '4', server_drops: '5' });
    expect(again.path?.path_segments?.[0]?.metrics ?? {}).toEqual({});
  });

  it('a failing read leaves the metrics out but the Request succeeds', async () => {
    const chain = chainServer(updatePathServer('a', { requireConnectionId: true }), statsServer({ known: () => true, figures: () => Promise.reject(new Error('gone')) }));
    const conn = await chain.request(Ctx.background(), { connection: { id: 'c', path: { index: 0, path_segments: [{ id: 'c', name: 'nsc' }] } } });
    expect(conn.id).toBe('c');
  });
});
