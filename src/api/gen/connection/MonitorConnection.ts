// Original file: proto/networkservice/connection.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { ConnectionEvent as _connection_ConnectionEvent, ConnectionEvent__Output as _connection_ConnectionEvent__Output } from '../connection/ConnectionEvent';
import type { MonitorScopeSelector as _connection_MonitorScopeSelector, MonitorScopeSelector__Output as _connection_MonitorScopeSelector__Output } from '../connection/MonitorScopeSelector';

export interface MonitorConnectionClient extends grpc.Client {
  MonitorConnections(argument: _connection_MonitorScopeSelector, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_connection_ConnectionEvent__Output>;
  MonitorConnections(argument: _connection_MonitorScopeSelector, options?: grpc.CallOptions): grpc.ClientReadableStream<_connection_ConnectionEvent__Output>;
  monitorConnections(argument: _connection_MonitorScopeSelector, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_connection_ConnectionEvent__Output>;
  monitorConnections(argument: _connection_MonitorScopeSelector, options?: grpc.CallOptions): grpc.ClientReadableStream<_connection_ConnectionEvent__Output>;
  
}

export interface MonitorConnectionHandlers extends grpc.UntypedServiceImplementation {
  MonitorConnections: grpc.handleServerStreamingCall<_connection_MonitorScopeSelector__Output, _connection_ConnectionEvent>;
  
}

export interface MonitorConnectionDefinition extends grpc.ServiceDefinition {
  MonitorConnections: MethodDefinition<_connection_MonitorScopeSelector, _connection_ConnectionEvent, _connection_MonitorScopeSelector__Output, _connection_ConnectionEvent__Output>
}
