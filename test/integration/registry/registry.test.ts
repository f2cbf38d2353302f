/**
 * The registry over real gRPC on 127.0.0.1: server glue + server chains on one side, the
 * client tails (and refresh/heal) on the other. No root needed.
 */
import { describe, it, expect, afterEach } from 'vitest';
import * as http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { api } from '../../../src/api';
import { realClock } from '../../../src/core/clock';
import { Ctx } from '../../../src/core/ctx';
import { AgentError } from '../../../src/core/errors';
import { NseRegistry, chainNseRegistry, findAll, nextNseRegistry } from '../../../src/core/registry';
import { fromTimestamp } from '../../../src/api/time';
import type { NetworkServiceEndpointResponse } from '../../../src/api';
import { newRegistryServer, RegistryServer } from '../../../src/registry/server';
import { addRegistryServices } from '../../../src/registry/grpc';
import { grpcNsRegistry, grpcNseRegistry, newRegistryClients, refreshNseClient } from '../../../src/registry/client';
import { REGISTRY_PATH, RegistryPath } from '../../../src/registry/path';
import { MemoryStore } from '../../../src/registry/store/memory';
import type { RegistryStore } from '../../../src/registry/store/store';

/** A memory store that counts the NSE watches open on it. */
function countingStore(): RegistryStore & { watching: () => number } {
  const inner = new MemoryStore();
  let open = 0;
  const nse = Object.create(inner.nse) as typeof inner.nse;
  nse.watch = async function* (signal) {
    open++;
    try {
      yield* inner.nse.watch(signal);
    } finally {
      open--;
    }
  };
  return { ns: inner.ns, nse, watching: () => open };
}

interface Running {
  port: number;
  reg: RegistryServer;
  stop(): void;
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()?.();
});

async function startServer(opts: { port?: number; defaultExpiration?: number; store?: RegistryStore } = {}): Promise<Running> {
  const server = new grpc.Server();
  const reg = newRegistryServer({ clock: realClock, defaultExpiration: opts.defaultExpiration, store: opts.store });
  const life = new AbortController();
  addRegistryServices(server, reg, Ctx.background({ clock: realClock, signal: life.signal }));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${opts.port ?? 0}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    life.abort();
    reg.close();
    server.forceShutdown();
  };
  cleanups.push(stop);
  return { port, reg, stop };
}

function connect(port: number) {
  const clients = newRegistryClients(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  cleanups.push(() => clients.close());
  return clients;
}

/** A ctx on the real clock, aborted at cleanup. */
function liveCtx(): [Ctx, AbortController] {
  const ac = new AbortController();
  cleanups.push(() => ac.abort());
  return [Ctx.background({ clock: realClock, signal: ac.signal }), ac];
}

async function waitFor<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, ms: number): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== (false as unknown)) return v;
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function watchInto(it: AsyncIterable<NetworkServiceEndpointResponse>) {
  const events: [string, boolean][] = [];
  let error: unknown;
  const done = (async () => {
    try {
      for await (const r of it) events.push([r.network_service_endpoint?.name ?? '', Boolean(r.deleted)]);
    } catch (e) {
      error = e;
    }
  })();
  return { events, done, error: () => error };
}

describe('registry over gRPC', () => {
  it('registers, finds and unregisters NSEs and NSs', async () => {
    const srv = await startServer();
    const clients = connect(srv.port);
    const nse = grpcNseRegistry(clients.nse);
    const ns = grpcNsRegistry(clients.ns);
    const [ctx] = liveCtx();

    const before = Date.now();
    const resp = await nse.register(ctx, { name: 'nse-1', network_service_names: ['svc'], url: 'tcp://10.0.0.1:5001' });
    const exp = fromTimestamp(resp.expiration_time) ?? 0;
    expect(exp).toBeGreaterThanOrEqual(before + 60_000 - 1000);
    expect(exp).toBeLessThanOrEqual(Date.now() + 60_000 + 1000);
    expect(fromTimestamp(resp.initial_registration_time)).toBeGreaterThanOrEqual(before - 1000);
    await nse.register(ctx, { name: 'nse-2', network_service_names: ['other'], url: 'tcp://10.0.0.2:5001' });

    const found = await findAll(nse.find(ctx, { network_service_endpoint: { network_service_names: ['svc'] } }));
    expect(found.map((r) => r.network_service_endpoint?.name)).toEqual(['nse-1']);
    const byUrl = await findAll(nse.find(ctx, { network_service_endpoint: { url: '10.0.0.2' } }));
    expect(byUrl.map((r) => r.network_service_endpoint?.name)).toEqual(['nse-2']);

    expect((await ns.register(ctx, { name: 'svc' })).payload).toBe('IP');
    const nss = await findAll(ns.find(ctx, { network_service: { name: 'svc' } }));
    expect(nss.map((r) => [r.network_service?.name, r.network_service?.payload])).toEqual([['svc', 'IP']]);

    await nse.unregister(ctx, { name: 'nse-1' });
    await ns.unregister(ctx, { name: 'svc' });
    expect((await findAll(nse.find(ctx, { network_service_endpoint: {} }))).map((r) => r.network_service_endpoint?.name)).toEqual(['nse-2']);
    expect(await findAll(ns.find(ctx, { network_service: {} }))).toEqual([]);
  });

  it('maps errors to AgentErrors with the same code', async () => {
    const srv = await startServer();
    const nse = grpcNseRegistry(connect(srv.port).nse);
    const [ctx] = liveCtx();
    const err = await nse.register(ctx, { name: '' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe('INVALID_ARGUMENT');
  });

  it('streams a watch: current matches, then changes, until the client cancels', async () => {
    const store = countingStore();
    const srv = await startServer({ store });
    const nse = grpcNseRegistry(connect(srv.port).nse);
    const [ctx] = liveCtx();
    await nse.register(ctx, { name: 'a', network_service_names: ['svc'] });

    const ac = new AbortController();
    const [wctx] = ctx.withSignal(ac.signal);
    const w = watchInto(nse.find(wctx, { network_service_endpoint: { network_service_names: ['svc'] }, watch: true }));
    await waitFor('initial state', () => w.events.length === 1 || undefined, 2000);

    await nse.register(ctx, { name: 'b', network_service_names: ['svc'] });
    await nse.register(ctx, { name: 'c', network_service_names: ['nope'] });
    await nse.unregister(ctx, { name: 'a' });
    await waitFor('changes', () => w.events.length >= 3 || undefined, 2000);
    expect(w.events).toEqual([
      ['a', false],
      ['b', false],
      ['a', true],
    ]);

    expect(store.watching()).toBe(1);
    ac.abort();
    await w.done;
    expect(w.error()).toBeUndefined();
    // The server notices the cancel and lets go of its store watch.
    await waitFor('server-side watch to end', () => store.watching() === 0 || undefined, 2000);
  });

  it('keeps a watch with a client deadline open until that deadline', async () => {
    const srv = await startServer();
    const nse = grpcNseRegistry(connect(srv.port).nse);
    const [ctx] = liveCtx();
    const [wctx, cancel] = ctx.withTimeout(700);
    cleanups.push(cancel);
    const w = watchInto(nse.find(wctx, { network_service_endpoint: {}, watch: true }));
    await new Promise((r) => setTimeout(r, 300));
    await nse.register(ctx, { name: 'late' });
    await waitFor('event', () => w.events.length === 1 || undefined, 2000);
    expect(w.error()).toBeUndefined();
    await w.done; // ends when the deadline passes
    expect(w.events).toEqual([['late', false]]);
  });

  it('ends the watch of a client that stops reading with UNAVAILABLE, without blocking registrations', async () => {
    const srv = await startServer({ store: new MemoryStore({ watchBuffer: 4 }) });
    const nse = grpcNseRegistry(connect(srv.port).nse);
    const [ctx] = liveCtx();

    // A raw HTTP/2 gRPC client that stops reading, so flow control pushes back to the server
    // (a grpc-js client would keep absorbing messages into its own memory).
    const session = http2.connect(`http://127.0.0.1:${srv.port}`);
    cleanups.push(() => session.destroy());
    const req = session.request({
      ':method': 'POST',
      ':path': '/registry.NetworkServiceEndpointRegistry/Find',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    const query = api().reg.registry.NetworkServiceEndpointRegistry.service.Find.requestSerialize({
      network_service_endpoint: {},
      watch: true,
    });
    const frame = Buffer.alloc(5 + query.length);
    frame.writeUInt32BE(query.length, 1);
    query.copy(frame, 5);
    req.end(frame);
    const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => req.on('trailers', resolve));
    req.pause();

    const big = 'x'.repeat(16 * 1024);
    const t0 = Date.now();
    for (let i = 0; i < 100; i++) await nse.register(ctx, { name: `n${i}`, url: `tcp://${big}:5001` });
    expect(Date.now() - t0).toBeLessThan(5000);
    // Everything is registered even though the watcher is stuck.
    expect((await findAll(nse.find(ctx, { network_service_endpoint: {} }))).length).toBe(100);

    let bytes = 0;
    req.on('data', (chunk: Buffer) => (bytes += chunk.length));
    req.resume();
    const t = await trailers;
    expect(t['grpc-status']).toBe(String(grpc.status.UNAVAILABLE));
    expect(bytes).toBeGreaterThan(0);
    expect(bytes).toBeLessThan(100 * 16 * 1024);
  });

  it('a watcher sees deleted=true when an entry expires', async () => {
    const srv = await startServer({ defaultExpiration: 400 });
    const nse = grpcNseRegistry(connect(srv.port).nse);
    const [ctx] = liveCtx();
    const w = watchInto(nse.find(ctx, { network_service_endpoint: { name: 'short' }, watch: true }));
    const t0 = Date.now();
    await nse.register(ctx, { name: 'short' });
    await waitFor('expiry event', () => w.events.find((e) => e[1]), 3000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(350);
    expect(w.events).toEqual([
      ['short', false],
      ['short', true],
    ]);
    expect(await findAll(nse.find(ctx, { network_service_endpoint: {} }))).toEqual([]);
  });

  it('answers the path header when one is sent, and works without one', async () => {
    const srv = await startServer();
    const clients = connect(srv.port);
    const sent = '{"Index":1,"PathSegments":[{"token":"t0"},{"token":"t1"}]}';
    const header = await new Promise<grpc.Metadata>((resolve, reject) => {
      const md = new grpc.Metadata();
      md.set('path', sent);
      const call = clients.nse.Register({ name: 'p' }, md, (err) => err && reject(err));
      call.on('metadata', resolve);
    });
    expect(header.get('path')).toEqual([sent]);

    const noPath = await new Promise<{ header: grpc.Metadata | undefined; name: string }>((resolve, reject) => {
      let header: grpc.Metadata | undefined;
      const call = clients.nse.Register({ name: 'q' }, new grpc.Metadata(), (err, res) =>
        err ? reject(err) : resolve({ header, name: res?.name ?? '' }),
      );
      call.on('metadata', (md) => (header = md));
    });
    expect(noPath.name).toBe('q');
    expect(noPath.header?.get('path') ?? []).toEqual([]);

  });

  it('answers the path as the server chain left it, and the client copies it back', async () => {
    // A server whose chain moves the path on, as an updatepath element would.
    const reg = newRegistryServer({ clock: realClock });
    const seen: string[] = [];
    const bump: NseRegistry = {
      register(ctx, nse) {
        const p = ctx.get(REGISTRY_PATH);
        seen.push(JSON.stringify(p ?? 'absent'));
        if (p) {
          p.Index += 1;
          p.PathSegments = [...(p.PathSegments ?? []), { token: `seen-${nse.name}` }];
        }
        return nextNseRegistry(ctx).register(ctx, nse);
      },
      find: (ctx, q) => nextNseRegistry(ctx).find(ctx, q),
      unregister: (ctx, nse) => nextNseRegistry(ctx).unregister(ctx, nse),
    };
    const server = new grpc.Server();
    addRegistryServices(server, { ns: reg.ns, nse: chainNseRegistry(bump, reg.nse) }, Ctx.background({ clock: realClock }));
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    cleanups.push(() => server.forceShutdown());
    cleanups.push(() => reg.close());

    const nse = grpcNseRegistry(connect(port).nse);
    const path: RegistryPath = { Index: 0, PathSegments: [{ token: 'mine' }] };
    const [ctx] = liveCtx();
    await nse.register(ctx.with(REGISTRY_PATH, path), { name: 'r' });
    expect(path).toEqual({ Index: 1, PathSegments: [{ token: 'mine' }, { token: 'seen-r' }] });

    // Without a path in the ctx the client sends the empty one upstream sends.
    await nse.register(ctx, { name: 's' });
    expect(seen).toEqual(['{"Index":0,"PathSegments":[{"token":"mine"}]}', '{"Index":0,"PathSegments":null}']);
  });

  it('a refreshing, healing client re-registers within 2 s after the registry restarts empty', async () => {
    const first = await startServer();
    const port = first.port;
    const clients = connect(port);
    const life = new AbortController();
    cleanups.push(() => life.abort());
    const chain = chainNseRegistry(refreshNseClient({ signal: life.signal, heal: true }), grpcNseRegistry(clients.nse));
    const [ctx] = liveCtx();
    await chain.register(ctx, { name: 'survivor', network_service_names: ['svc'], url: 'tcp://10.0.0.7:5001' });
    expect((await findAll(first.reg.nse.find(first.reg.ctx(), { network_service_endpoint: {} }))).length).toBe(1);
    await new Promise((r) => setTimeout(r, 100)); // let the heal watch open

    first.stop();
    await new Promise((r) => setTimeout(r, 300));
    const second = await startServer({ port });
    const t0 = Date.now();
    const found = await waitFor(
      're-registration',
      async () => {
        const all = await findAll(second.reg.nse.find(second.reg.ctx(), { network_service_endpoint: { name: 'survivor' } }));
        return all[0]?.network_service_endpoint ?? undefined;
      },
      2000,
    );
    expect(Date.now() - t0).toBeLessThanOrEqual(2000);
    expect(found.url).toBe('tcp://10.0.0.7:5001');
    expect(found.network_service_names).toEqual(['svc']);

    // Unregister stops it for good and removes the entry.
    await chain.unregister(ctx, { name: 'survivor' });
    expect(await findAll(second.reg.nse.find(second.reg.ctx(), { network_service_endpoint: {} }))).toEqual([]);
  });
});
