// The trace elements: spans parented through the Ctx, errors recorded, the context passed on.
import { describe, expect, it } from 'vitest';
import { Ctx } from '../../../src/core/ctx';
import { chainServer, nextServer } from '../../../src/core/networkservice';
import { TRACE_CONTEXT, traceContextOf, type TraceContext } from '../../../src/core/trace';
import { traceServer, tracedServer, type Tracer } from '../../../src/networkservice/trace';

function fakeTracer() {
  const spans: { name: string; parent?: string; id: string; ended?: boolean; err?: unknown; attributes: Record<string, string> }[] = [];
  const tracer: Tracer = {
    start(name, parent, attributes) {
      const id = `span${spans.length}`;
      const span: (typeof spans)[number] = { name, id, attributes, ...(parent ? { parent: parent.traceparent } : {}) };
      spans.push(span);
      return {
        context: { traceparent: id },
        end(err) {
          span.ended = true;
          if (err !== undefined) span.err = err;
        },
      };
    },
  };
  return { tracer, spans };
}

describe('trace elements', () => {
  it('make a hop span and element spans under it, children of the incoming context', async () => {
    const { tracer, spans } = fakeTracer();
    const seen: (TraceContext | undefined)[] = [];
    const chain = chainServer(
      traceServer(tracer, 'host-a'),
      tracedServer(tracer, 'connect', {
        request: async (ctx, req) => {
          seen.push(ctx.get(TRACE_CONTEXT));
          return nextServer(ctx).request(ctx, req);
        },
        close: (ctx, conn) => nextServer(ctx).close(ctx, conn),
      }),
    );
    const ctx = Ctx.background().with(TRACE_CONTEXT, { traceparent: 'caller' });
    await chain.request(ctx, { connection: { id: 'c1', network_service: 'svc' } });
    expect(spans.map((s) => [s.name, s.parent, s.ended])).toEqual([
      ['host-a/Request', 'caller', true],
      ['connect/Request', 'span0', true],
    ]);
    expect(seen).toEqual([{ traceparent: 'span1' }]);
    expect(spans[0]!.attributes).toEqual({ 'nsm.connection_id': 'c1', 'nsm.network_service': 'svc' });
  });

  it('ends a failed span with its error', async () => {
    const { tracer, spans } = fakeTracer();
    const boom = new Error('boom');
    const chain = chainServer(traceServer(tracer, 'h'), { request: () => Promise.reject(boom), close: () => Promise.reject(boom) });
    await expect(chain.close(Ctx.background(), { id: 'x' })).rejects.toBe(boom);
    expect(spans).toMatchObject([{ name: 'h/Close', ended: true, err: boom }]);
    expect(spans[0]).not.toHaveProperty('parent');
  });

  it('takes only well-formed traceparent values', () => {
    const tp = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    expect(traceContextOf(tp)).toEqual({ traceparent: tp });
    expect(traceContextOf(tp, 'k=v')).toEqual({ traceparent: tp, tracestate: 'k=v' });
    expect(traceContextOf('00-zz')).toBeUndefined();
    expect(traceContextOf(Buffer.from(tp))).toBeUndefined();
  });
});
