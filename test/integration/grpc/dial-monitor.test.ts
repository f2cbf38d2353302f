/**
 * ChannelPool.monitor against real grpc-js servers on unix sockets in a temp dir: the
 * MonitorConnections stream goes over the pool's channel (plain, and mTLS with SVIDs), delivers
 * the hub's events, reports a broken stream and never reports its own cancellation.
 */
import { describe, it, expect, afterEach } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { api, type Connection, type ConnectionEvent, type MonitorScopeSelector } from '../../../src/api';
import type { AgentError } from '../../../src/core/errors';
import { ChannelPool } from '../../../src/agent/grpc/dial';
import { addMonitor } from '../../../src/agent/grpc/networkservice';
import { MonitorHub } from '../../../src/networkservice/monitor';
import { LocalCa } from '../../../src/spire/ca';
import { peerFromCall } from '../../../src/spire/peer';
import { channelCredentials } from '../../../src/spire/channel';
import { serverCredentials } from '../../helpers/spire/server-credentials';
import { StaticSource, contextOf } from '../../helpers/spire/static-source';
import { waitFor } from '../../helpers/spire/wait';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'nsmt-monitor-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function serve(server: grpc.Server, creds = grpc.ServerCredentials.createInsecure()): Promise<URL> {
  const sock = path.join(tempDir(), 'nsm.sock');
  await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${sock}`, creds, (err) => (err ? reject(err) : resolve())));
  cleanups.push(() => void server.forceShutdown());
  return new URL(`unix://${sock}`);
}

function pool(opts: ConstructorParameters<typeof ChannelPool>[0] = {}): ChannelPool {
  const p = new ChannelPool(opts);
  cleanups.push(() => p.close());
  return p;
}

const conn = (id: string, state: Connection['state'] = 'UP'): Connection => ({
  id: `${id}-mgr`,
  network_service: 'ns',
  state,
  path: { index: 1, path_segments: [{ name: 'nsc', id }, { name: 'mgr', id: `${id}-mgr` }] },
});

function watch(p: ChannelPool, url: URL, selector: MonitorScopeSelector) {
  const events: ConnectionEvent[] = [];
  const errors: AgentError[] = [];
  const stop = p.monitor(url, selector, (e) => events.push(e), (e) => errors.push(e));
  return { events, errors, stop };
}

describe('ChannelPool.monitor', () => {
  it('streams the selected connections over the pool channel; cancelling is not an error', async () => {
    const hub = new MonitorHub();
    const server = new grpc.Server();
    addMonitor(server, hub);
    const url = await serve(server);
    hub.update(conn('c1'));
    hub.update(conn('c2'));
    const p = pool();

    const w = watch(p, url, { path_segments: [{ id: 'c1', name: 'nsc' }] });
    await waitFor(() => w.events.length === 1);
    expect(w.events[0]!.type).toBe('INITIAL_STATE_TRANSFER');
    expect(Object.keys(w.events[0]!.connections ?? {})).toEqual(['c1-mgr']);
    // The stream went over the channel Requests use: it is connected, though ready() never ran.
    expect(p.get(url).stub.getChannel().getConnectivityState(false)).toBe(grpc.connectivityState.READY);

    hub.update(conn('c2', 'DOWN')); // not selected
    hub.update(conn('c1', 'DOWN'));
    hub.delete(conn('c1'));
    await waitFor(() => w.events.length === 3);
    expect(w.events.slice(1).map((e) => [e.type, e.connections?.['c1-mgr']?.state])).toEqual([
      ['UPDATE', 'DOWN'],
      ['DELETE', 'DOWN'],
    ]);

    expect(hub.subscribers).toBe(1);
    w.stop();
    await waitFor(() => hub.subscribers === 0);
    await new Promise((r) => setTimeout(r, 50));
    expect(w.errors).toEqual([]);
    w.stop(); // idempotent
  });

  it('reports a stream the server breaks, once, as UNAVAILABLE (never CANCELLED)', async () => {
    const hub = new MonitorHub();
    const server = new grpc.Server();
    addMonitor(server, hub);
    const url = await serve(server);
    const p = pool();
    const w = watch(p, url, {});
    await waitFor(() => w.events.length === 1);
    server.forceShutdown();
    await waitFor(() => w.errors.length === 1);
    // grpc-js cancels the streams of a server shut down by force: the peer went away.
    expect(w.errors[0]!.code).toBe('UNAVAILABLE');
    expect(w.errors[0]!.message).toContain(url.pathname);
    await new Promise((r) => setTimeout(r, 50));
    expect(w.errors).toHaveLength(1);
    w.stop(); // after the error: harmless
  });

  it('a stream the server ends without error is UNAVAILABLE; an unknown host fails the stream', async () => {
    const server = new grpc.Server();
    server.addService(api().ns.connection.MonitorConnection.service, {
      MonitorConnections: (call: grpc.ServerWritableStream<MonitorScopeSelector, ConnectionEvent>) => {
        call.write({ type: 'INITIAL_STATE_TRANSFER', connections: {} });
        call.end();
      },
    });
    const url = await serve(server);
    const p = pool();
    const w = watch(p, url, {});
    await waitFor(() => w.errors.length === 1);
    expect(w.errors[0]!.code).toBe('UNAVAILABLE');
    expect(w.events).toHaveLength(1);

    const nowhere = new URL(`unix://${path.join(tempDir(), 'none.sock')}`);
    const w2 = watch(p, nowhere, {});
    await waitFor(() => w2.errors.length === 1);
    expect(w2.errors[0]!.code).toBe('UNAVAILABLE');
  });

  it('pool.close() cancels open streams without reporting them', async () => {
    const hub = new MonitorHub();
    const server = new grpc.Server();
    addMonitor(server, hub);
    const url = await serve(server);
    const p = new ChannelPool();
    const w = watch(p, url, {});
    await waitFor(() => hub.subscribers === 1);
    p.close();
    await waitFor(() => hub.subscribers === 0);
    await new Promise((r) => setTimeout(r, 50));
    expect(w.errors).toEqual([]);
  });

  it('uses the pool credentials: the server sees the agent SVID on the stream (mTLS on the unix socket)', async () => {
    const TD = 'example.org';
    const ca = LocalCa.create({ trustDomain: TD });
    const serverSrc = new StaticSource(contextOf(ca.issue(`spiffe://${TD}/nsm/agent/server`), ca));
    const clientSrc = new StaticSource(contextOf(ca.issue(`spiffe://${TD}/nsm/agent/client`), ca));
    const seen: (string | undefined)[] = [];
    const server = new grpc.Server();
    server.addService(api().ns.connection.MonitorConnection.service, {
      MonitorConnections: (call: grpc.ServerWritableStream<MonitorScopeSelector, ConnectionEvent>) => {
        seen.push(peerFromCall(call)?.id);
        call.write({ type: 'INITIAL_STATE_TRANSFER', connections: {} });
      },
    });
    const url = await serve(server, serverCredentials(serverSrc));
    const tls = channelCredentials(clientSrc);
    const p = pool({ credentials: () => tls });
    const w = watch(p, url, {});
    await waitFor(() => w.events.length === 1);
    expect(seen).toEqual([`spiffe://${TD}/nsm/agent/client`]);
    expect(tls.peer()?.id).toBe(`spiffe://${TD}/nsm/agent/server`);
    w.stop();
    expect(w.errors).toEqual([]);
  });
});
