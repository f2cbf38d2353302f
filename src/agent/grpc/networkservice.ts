/**
 * Serves networkservice.NetworkService and connection.MonitorConnection from a server chain
 * and a monitor hub. Chain errors become gRPC statuses here and nowhere else.
 */
import type * as grpc from '@grpc/grpc-js';
import { api, Connection, ConnectionEvent, MonitorScopeSelector, NetworkServiceRequest } from '../../api';
import { Ctx } from '../../core/ctx';
import type { NetworkServiceServer } from '../../core/networkservice';
import { unaryHandler as unary } from './call-ctx';

export interface MonitorSource {
  subscribe(selector: MonitorScopeSelector, onEvent: (e: ConnectionEvent) => void): () => void;
}

/**
 * One MonitorConnections source over several hubs (the agent's own and its relay's): each
 * subscriber gets every hub's events, an initial state transfer from each.
 */
export function mergedMonitor(...sources: MonitorSource[]): MonitorSource {
  return {
    subscribe(selector, onEvent) {
      const ends = sources.map((s) => s.subscribe(selector, onEvent));
      return () => ends.forEach((end) => end());
    },
  };
}

export function addNetworkService(server: grpc.Server, chain: NetworkServiceServer, base: () => Ctx): void {
  server.addService(api().ns.networkservice.NetworkService.service, {
    Request: unary<NetworkServiceRequest, Connection>(base, (ctx, req) => chain.request(ctx, req)),
    Close: unary<Connection, object>(base, async (ctx, conn) => {
      await chain.close(ctx, conn);
      return {};
    }),
  });
}

export function addMonitor(server: grpc.Server, hub: MonitorSource): void {
  server.addService(api().ns.connection.MonitorConnection.service, {
    MonitorConnections: (call: grpc.ServerWritableStream<MonitorScopeSelector, ConnectionEvent>) => {
      const unsubscribe = hub.subscribe(call.request, (event) => {
        if (!call.cancelled) call.write(event);
      });
      call.on('cancelled', unsubscribe);
      call.on('error', unsubscribe);
    },
  });
}
