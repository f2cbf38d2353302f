import { describe, it, expect } from 'vitest';
import { Ctx } from '../../../src/core/ctx';
import { chainServer } from '../../../src/core/networkservice';
import { clientInfoServer } from '../../../src/networkservice/clientinfo';
import { recorder } from './helpers';

describe('clientinfo server', () => {
  it('adds nodeName without overwriting labels or touching the caller request', async () => {
    const rec = recorder();
    const chain = chainServer(clientInfoServer({ nodeName: 'host-1', clusterName: '' }), rec);
    const req = { connection: { id: 'a', labels: { app: 'x' } } };
    await chain.request(Ctx.background(), req);
    await chain.request(Ctx.background(), { connection: { id: 'b', labels: { nodeName: 'other' } } });
    await chain.request(Ctx.background(), { connection: { id: 'c' } });
    expect(rec.requests.map((r) => r.connection!.labels)).toEqual([
      { app: 'x', nodeName: 'host-1' },
      { nodeName: 'other' },
      { nodeName: 'host-1' },
    ]);
    expect(req.connection.labels).toEqual({ app: 'x' });
  });
});
