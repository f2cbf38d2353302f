import { describe, it, expect } from 'vitest';
import { Ctx } from '../../../src/core/ctx';
import { chainServer, chainClient, NetworkServiceServer } from '../../../src/core/networkservice';
import { clientURL, withClientURL, clientURLServer, clientURLClient } from '../../../src/networkservice/clienturl';
import { asNextHop } from '../../../src/networkservice/nexthop';
import { beginServer, eventFactoryOf } from '../../../src/networkservice/begin';
import { metadataServer, hasMetadata } from '../../../src/networkservice/metadata';
import { recorder, clientRecorder } from './helpers';

describe('clienturl', () => {
  it('parses and carries the URL; the elements set it for the rest of the chain', async () => {
    expect(clientURL(Ctx.background())).toBeUndefined();
    expect(clientURL(withClientURL(Ctx.background(), 'unix:///run/nsm.sock'))?.pathname).toBe('/run/nsm.sock');
    expect(() => withClientURL(Ctx.background(), 'not a url')).toThrow(/failed to parse url/);

    const rec = recorder();
    await chainServer(clientURLServer('tcp://10.0.0.1:5001'), rec).request(Ctx.background(), { connection: { id: 'a' } });
    expect(clientURL(rec.ctxs[0]!)?.host).toBe('10.0.0.1:5001');
    const crec = clientRecorder();
    await chainClient(clientURLClient(new URL('tcp://h:1')), crec).close(Ctx.background(), { id: 'a' });
    expect(clientURL(crec.ctxs[0]!)?.href).toBe('tcp://h:1');
  });
});

describe('asNextHop', () => {
  it('removes the chain-scoped state of the caller', async () => {
    const rec = recorder();
    await chainServer(beginServer(), metadataServer(), clientURLServer('tcp://h:1'), rec).request(Ctx.background(), {
      connection: { id: 'a' },
    });
    const inner = rec.ctxs[0]!;
    expect(eventFactoryOf(inner)).toBeDefined();
    const hop = asNextHop(inner);
    expect(eventFactoryOf(hop)).toBeUndefined();
    expect(hasMetadata(hop)).toBe(false);
    expect(clientURL(hop)).toBeUndefined();
    expect(hop.clock).toBe(inner.clock);
  });

  it('makes a nested chain end in its own tail instead of the caller next element', async () => {
    const after = recorder();
    const nested = chainServer(recorder());
    const caller: NetworkServiceServer = {
      request: (ctx, req) => nested.request(asNextHop(ctx), req),
      close: (ctx, conn) => nested.close(asNextHop(ctx), conn),
    };
    await chainServer(caller, after).request(Ctx.background(), { connection: { id: 'a' } });
    expect(after.requests).toHaveLength(0);
    const leaky: NetworkServiceServer = { request: (ctx, req) => nested.request(ctx, req), close: (ctx, c) => nested.close(ctx, c) };
    await chainServer(leaky, after).request(Ctx.background(), { connection: { id: 'a' } });
    expect(after.requests).toHaveLength(1);
  });
});
