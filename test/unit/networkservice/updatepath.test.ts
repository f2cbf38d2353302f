import { describe, it, expect } from 'vitest';
import type { Connection } from '../../../src/api';
import { Ctx } from '../../../src/core/ctx';
import { AgentError } from '../../../src/core/errors';
import { chainServer, chainClient, clientToServer } from '../../../src/core/networkservice';
import { updatePathServer, updatePathClient } from '../../../src/networkservice/updatepath';
import { recorder, clientRecorder } from './helpers';

const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const ctx = () => Ctx.background();

describe('updatepath', () => {
  it('starts a path with the caller id at index 0 and returns it unchanged to the caller', async () => {
    const seen = recorder();
    const conn = await chainServer(updatePathServer('nsc'), seen).request(ctx(), { connection: { id: 'nsc-1' } });
    expect(seen.requests[0]!.connection).toMatchObject({ id: 'nsc-1', path: { index: 0, path_segments: [{ name: 'nsc', id: 'nsc-1' }] } });
    expect(conn.id).toBe('nsc-1');
    expect(conn.path).toEqual({ index: 0, path_segments: [{ name: 'nsc', id: 'nsc-1' }] });
  });

  it('generates a UUIDv4 for an empty first id, or refuses it when asked to', async () => {
    const conn = await chainServer(updatePathServer('nsc')).request(ctx(), { connection: {} });
    expect(conn.id).toMatch(UUID4);
    expect(conn.path?.path_segments?.[0]?.id).toBe(conn.id);

    const strict = chainServer(updatePathServer('agent', { requireConnectionId: true }));
    const err = await strict.request(ctx(), { connection: { id: '' } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect(err).toMatchObject({ code: 'INVALID_ARGUMENT', message: 'connection id must not be empty' });
    // An established path does not need the option's check.
    const ok = await strict.request(ctx(), { connection: { id: 'c', path: { index: 0, path_segments: [{ name: 'nsc', id: 'c' }] } } });
    expect(ok.id).toBe('c');
  });

  it('gives every hop its own id and index, and each caller back its own', async () => {
    const atMgr = recorder();
    const atNse = recorder();
    const backAtMgr: Connection[] = [];
    const chain = chainServer(
      updatePathServer('nsc'),
      updatePathServer('mgr'),
      atMgr,
      recorder((c) => (backAtMgr.push(structuredClone(c)), c)),
      updatePathServer('nse'),
      atNse,
    );
    const conn = await chain.request(ctx(), { connection: { id: 'c1', network_service: 'ns' } });

    const mgrReq = atMgr.requests[0]!.connection!;
    const nseReq = atNse.requests[0]!.connection!;
    expect(mgrReq.path?.index).toBe(1);
    expect(mgrReq.id).toMatch(UUID4);
    expect(nseReq.path?.index).toBe(2);
    expect(nseReq.id).toMatch(UUID4);
    expect(nseReq.id).not.toBe(mgrReq.id);
    expect(conn.path?.path_segments?.map((s) => [s.name, s.id])).toEqual([
      ['nsc', 'c1'],
      ['mgr', mgrReq.id],
      ['nse', nseReq.id],
    ]);
    // On the way back the nse hop restored the manager's view, and the manager the client's.
    expect(backAtMgr[0]).toMatchObject({ id: mgrReq.id, path: { index: 1 } });
    expect(conn).toMatchObject({ id: 'c1', path: { index: 0 } });

    // A refresh with the returned connection reuses every id and adds no segment.
    const again = await chain.request(ctx(), { connection: conn });
    expect(again.path?.path_segments).toEqual(conn.path?.path_segments);
    expect(atNse.requests[1]!.connection!.id).toBe(nseReq.id);
  });

  it('rejects a connection whose id is not the current segment id', async () => {
    const err = await chainServer(updatePathServer('mgr'))
      .request(ctx(), { connection: { id: 'x', path: { index: 0, path_segments: [{ name: 'nsc', id: 'y' }] } } })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'INVALID_ARGUMENT', message: 'Current PathSegment.Id==y should be equal Connection.Id==x' });
  });

  it('rejects an index past the end of the path', async () => {
    const err = await chainServer(updatePathServer('mgr'))
      .request(ctx(), { connection: { id: 'x', path: { index: 3, path_segments: [{ name: 'nsc', id: 'x' }] } } })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('renames the next segment to itself with a fresh id when the next hop changed', async () => {
    const seen = recorder();
    const input: Connection = {
      id: 'c1',
      path: {
        index: 0,
        path_segments: [
          { name: 'nsc', id: 'c1' },
          { name: 'old-mgr', id: 'old-id' },
          { name: 'nse', id: 'nse-id' },
        ],
      },
    };
    const frozen = structuredClone(input);
    await chainServer(updatePathServer('new-mgr'), seen).request(ctx(), { connection: input });
    const segs = seen.requests[0]!.connection!.path!.path_segments!;
    expect(segs[1]!.name).toBe('new-mgr');
    expect(segs[1]!.id).toMatch(UUID4);
    expect(segs[2]).toEqual({ name: 'nse', id: 'nse-id' });
    expect(seen.requests[0]!.connection!.id).toBe(segs[1]!.id);
    // The caller's object is untouched.
    expect(input).toEqual(frozen);
  });

  it('closes with this hop id and index', async () => {
    const seen = recorder();
    const conn: Connection = {
      id: 'c1',
      path: { index: 0, path_segments: [{ name: 'nsc', id: 'c1' }, { name: 'mgr', id: 'm1' }] },
    };
    await chainServer(updatePathServer('mgr'), seen).close(ctx(), conn);
    expect(seen.closes[0]).toMatchObject({ id: 'm1', path: { index: 1 } });
  });

  it('a client chain with the same name shares the server segment; another name adds one', async () => {
    const inner = clientRecorder();
    const server = chainServer(updatePathServer('mgr'), clientToServer(chainClient(updatePathClient('mgr'), inner)));
    const conn: Connection = { id: 'c1', path: { index: 0, path_segments: [{ name: 'nsc', id: 'c1' }] } };
    await server.request(ctx(), { connection: conn });
    expect(inner.requests[0]!.connection!.path!.path_segments).toHaveLength(2);
    expect(inner.requests[0]!.connection!.path!.index).toBe(1);

    const other = clientRecorder();
    const server2 = chainServer(updatePathServer('mgr'), clientToServer(chainClient(updatePathClient('mgr-client'), other)));
    await server2.request(ctx(), { connection: conn });
    expect(other.requests[0]!.connection!.path!.path_segments!.map((s) => s.name)).toEqual(['nsc', 'mgr', 'mgr-client']);
    expect(other.requests[0]!.connection!.path!.index).toBe(2);
  });
});
