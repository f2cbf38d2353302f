/**
 * Registry client tails: NS and NSE registry elements that call a remote registry over a
 * grpc-js client. They are the last element of a client chain (they never call next).
 *
 * - Register/Unregister send the ctx's REGISTRY_PATH (an empty path if none) in the `path`
 *   header and copy the `path` response header back into it.
 * - Find yields the stream's responses; aborting ctx cancels the call and ends the iterable
 *   normally; a stream error (registry gone, restart) is thrown as an AgentError.
 * - The ctx deadline becomes the call deadline; aborting ctx cancels a unary call too.
 * - gRPC errors become AgentErrors through AgentError.from.
 *
 * Also re-exports the refresh/heal client element (common/refresh.ts).
 */
import type * as grpc from '@grpc/grpc-js';
import { grpcJs } from '../api/grpc-js';
import { CHANNEL_OPTIONS, api } from '../api';
import type { NetworkServiceRegistryClient } from '../api/gen/registry/NetworkServiceRegistry';
import type { NetworkServiceEndpointRegistryClient } from '../api/gen/registry/NetworkServiceEndpointRegistry';
import { Ctx } from '../core/ctx';
import { AgentError } from '../core/errors';
import { NsRegistry, NseRegistry } from '../core/registry';
import { PATH_HEADER, REGISTRY_PATH, assignPath, emptyPath, formatPath, pathFromMetadata } from './path';

export { refreshNseClient } from './common/refresh';
export type { RefreshOptions } from './common/refresh';
export type { NetworkServiceRegistryClient, NetworkServiceEndpointRegistryClient };

/**
 * Channel options for registry clients: reconnect quickly after a registry restart (grpc-js
 * otherwise backs off from 1 s up to 120 s), so heal and refresh retries reach a new registry.
 */
export const REGISTRY_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  ...CHANNEL_OPTIONS,
  'grpc.initial_reconnect_backoff_ms': 200,
  'grpc.min_reconnect_backoff_ms': 200,
  'grpc.max_reconnect_backoff_ms': 1000,
};

/** grpc-js clients for both registry services on one channel; `close()` closes it. */
export function newRegistryClients(
  target: string,
  creds: grpc.ChannelCredentials,
  options: grpc.ChannelOptions = REGISTRY_CHANNEL_OPTIONS,
): { ns: NetworkServiceRegistryClient; nse: NetworkServiceEndpointRegistryClient; close(): void } {
  const { registry } = api().reg;
  const nse = new registry.NetworkServiceEndpointRegistry(target, creds, options);
  const ns = new registry.NetworkServiceRegistry(target, creds, { ...options, channelOverride: nse.getChannel() });
  return { ns, nse, close: () => nse.close() };
}

export function grpcNsRegistry(client: NetworkServiceRegistryClient): NsRegistry {
  return {
    register: (ctx, ns) => unary(ctx, (md, o, cb) => client.Register(ns, md, o, cb)),
    find: (ctx, query) => stream(ctx, (o) => client.Find(query, o)),
    unregister: async (ctx, ns) => {
      await unary(ctx, (md, o, cb) => client.Unregister(ns, md, o, cb));
    },
  };
}

export function grpcNseRegistry(client: NetworkServiceEndpointRegistryClient): NseRegistry {
  return {
    register: (ctx, nse) => unary(ctx, (md, o, cb) => client.Register(nse, md, o, cb)),
    find: (ctx, query) => stream(ctx, (o) => client.Find(query, o)),
    unregister: async (ctx, nse) => {
      await unary(ctx, (md, o, cb) => client.Unregister(nse, md, o, cb));
    },
  };
}

function callOptions(ctx: Ctx): grpc.CallOptions {
  const ms = ctx.remaining();
  return Number.isFinite(ms) ? { deadline: Date.now() + ms } : {};
}

async function unary<Res>(
  ctx: Ctx,
  invoke: (md: grpc.Metadata, opts: grpc.CallOptions, cb: grpc.requestCallback<Res>) => grpc.ClientUnaryCall,
): Promise<Res> {
  ctx.throwIfAborted();
  const path = ctx.get(REGISTRY_PATH) ?? emptyPath();
  const md = new grpcJs.Metadata();
  md.set(PATH_HEADER, formatPath(path));
  return new Promise<Res>((resolve, reject) => {
    const onAbort = () => call.cancel();
    const call = invoke(md, callOptions(ctx), (err, res) => {
      ctx.signal.removeEventListener('abort', onAbort);
      if (err) reject(ctx.signal.aborted ? AgentError.from(ctx.signal.reason ?? err) : AgentError.from(err));
      else resolve(res as Res);
    });
    call.on('metadata', (header: grpc.Metadata) => {
      try {
        const answered = pathFromMetadata(header);
        if (answered) assignPath(path, answered);
      } catch (err) {
        ctx.log.warn('malformed path response header', { err });
      }
    });
    ctx.signal.addEventListener('abort', onAbort, { once: true });
  });
}

async function* stream<Res>(ctx: Ctx, invoke: (opts: grpc.CallOptions) => grpc.ClientReadableStream<Res>): AsyncIterable<Res> {
  if (ctx.signal.aborted) return;
  const call = invoke(callOptions(ctx));
  const onAbort = () => call.cancel();
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const r of call) yield r as Res;
  } catch (err) {
    if (ctx.signal.aborted) return;
    throw AgentError.from(err);
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
    call.cancel();
  }
}
