import { describe, it, expect } from 'vitest';
import type { Mechanism } from '../../../src/api';
import { Ctx } from '../../../src/core/ctx';
import { AgentError } from '../../../src/core/errors';
import { chainServer, chainClient, nextServer, nextClient, NetworkServiceServer, NetworkServiceClient } from '../../../src/core/networkservice';
import { mechanismsServer, mechanismsClient } from '../../../src/networkservice/mechanisms';
import { recorder } from './helpers';

function handler(type: string, log: string[], fail?: AgentError): NetworkServiceServer {
  return {
    async request(ctx, req) {
      log.push(`${type} ${req.connection?.mechanism?.type}`);
      if (fail) throw fail;
      const conn = await nextServer(ctx).request(ctx, req);
      return { ...conn, labels: { ...conn.labels, handledBy: type } };
    },
    async close(ctx, conn) {
      log.push(`close ${type}`);
      await nextServer(ctx).close(ctx, conn);
    },
  };
}

const prefs = (...types: string[]): Mechanism[] => types.map((t) => ({ cls: 'LOCAL', type: t, parameters: { p: t } }));

describe('mechanisms server', () => {
  it('takes the first supported preference and continues the chain through its handler', async () => {
    const log: string[] = [];
    const after = recorder();
    const req = { connection: { id: 'a' }, mechanism_preferences: prefs('MEMIF', 'KERNEL', 'WIREGUARD') };
    const frozen = structuredClone(req);
    const conn = await chainServer(
      mechanismsServer({ KERNEL: handler('KERNEL', log), WIREGUARD: handler('WIREGUARD', log) }),
      after,
    ).request(Ctx.background(), req);
    expect(log).toEqual(['KERNEL KERNEL']);
    expect(after.requests[0]!.connection!.mechanism).toEqual({ cls: 'LOCAL', type: 'KERNEL', parameters: { p: 'KERNEL' } });
    expect(conn.labels).toEqual({ handledBy: 'KERNEL' });
    expect(req).toEqual(frozen);
  });

  it('falls through to the next supported preference when one fails', async () => {
    const log: string[] = [];
    const conn = await chainServer(
      mechanismsServer({ KERNEL: handler('KERNEL', log, new AgentError('DATAPLANE', 'no veth')), WIREGUARD: handler('WIREGUARD', log) }),
    ).request(Ctx.background(), { connection: { id: 'a' }, mechanism_preferences: prefs('KERNEL', 'WIREGUARD') });
    expect(log).toEqual(['KERNEL KERNEL', 'WIREGUARD WIREGUARD']);
    expect(conn.labels).toEqual({ handledBy: 'WIREGUARD' });
  });

  it('fails when no preference is supported, naming the requested types', async () => {
    const err = await chainServer(mechanismsServer({ KERNEL: handler('KERNEL', []) }))
      .request(Ctx.background(), { connection: { id: 'a' }, mechanism_preferences: prefs('MEMIF', 'VFIO') })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'UNSUPPORTED_MECHANISM',
      message: 'cannot support any of the requested mechanisms: [MEMIF, VFIO]',
    });
    const none = await chainServer(mechanismsServer({ KERNEL: handler('KERNEL', []) }))
      .request(Ctx.background(), { connection: { id: 'a' } })
      .catch((e: unknown) => e);
    expect(none).toMatchObject({ code: 'UNSUPPORTED_MECHANISM', message: 'cannot support any of the requested mechanisms: []' });
  });

  it('keeps the code of the failure when every supported handler failed', async () => {
    const err = await chainServer(mechanismsServer({ KERNEL: handler('KERNEL', [], new AgentError('NETNS_NOT_FOUND', 'no netns x')) }))
      .request(Ctx.background(), { connection: { id: 'a' }, mechanism_preferences: prefs('KERNEL') })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'NETNS_NOT_FOUND', message: 'no netns x' });
  });

  it('lists every failure, the last first, when several supported handlers failed', async () => {
    const err = await chainServer(
      mechanismsServer({
        KERNEL: handler('KERNEL', [], new AgentError('DATAPLANE', 'no veth', { component: 'the kernel' })),
        WIREGUARD: handler('WIREGUARD', [], new AgentError('UNAVAILABLE', 'peer down')),
      }),
    )
      .request(Ctx.background(), { connection: { id: 'a' }, mechanism_preferences: prefs('KERNEL', 'WIREGUARD') })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'UNAVAILABLE', message: 'WIREGUARD: peer down; KERNEL: no veth' });
  });

  it('on refresh uses the selected mechanism or fails; Close goes to its handler', async () => {
    const log: string[] = [];
    const chain = chainServer(mechanismsServer({ KERNEL: handler('KERNEL', log), WIREGUARD: handler('WIREGUARD', log) }));
    await chain.request(Ctx.background(), {
      connection: { id: 'a', mechanism: { type: 'WIREGUARD' } },
      mechanism_preferences: prefs('KERNEL'),
    });
    expect(log).toEqual(['WIREGUARD WIREGUARD']);
    await expect(
      chain.request(Ctx.background(), { connection: { id: 'a', mechanism: { type: 'VXLAN' } }, mechanism_preferences: prefs('KERNEL') }),
    ).rejects.toMatchObject({ code: 'UNSUPPORTED_MECHANISM', message: 'unsupported mechanism: VXLAN' });
    await chain.close(Ctx.background(), { id: 'a', mechanism: { type: 'KERNEL' } });
    const after = recorder();
    await chainServer(mechanismsServer({}), after).close(Ctx.background(), { id: 'a' });
    expect(log.at(-1)).toBe('close KERNEL');
    expect(after.closes).toHaveLength(1);
  });
});

describe('mechanisms client', () => {
  it('runs the handler of the first supported preference', async () => {
    const log: string[] = [];
    const h = (t: string): NetworkServiceClient => ({
      request: async (ctx, req) => (log.push(t), nextClient(ctx).request(ctx, req)),
      close: (ctx, c) => nextClient(ctx).close(ctx, c),
    });
    await chainClient(mechanismsClient({ KERNEL: h('KERNEL'), MEMIF: h('MEMIF') })).request(Ctx.background(), {
      connection: { id: 'a' },
      mechanism_preferences: prefs('VFIO', 'MEMIF', 'KERNEL'),
    });
    expect(log).toEqual(['MEMIF']);
    await expect(
      chainClient(mechanismsClient({ KERNEL: h('KERNEL') })).request(Ctx.background(), {
        connection: { id: 'a' },
        mechanism_preferences: prefs('VFIO'),
      }),
    ).rejects.toMatchObject({ code: 'UNSUPPORTED_MECHANISM' });
  });
});
