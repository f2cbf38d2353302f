// Original file: proto/agent/agent.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { ConnectRequest as _nsmagent_v1_ConnectRequest, ConnectRequest__Output as _nsmagent_v1_ConnectRequest__Output } from '../../nsmagent/v1/ConnectRequest';
import type { ConnectionStatus as _nsmagent_v1_ConnectionStatus, ConnectionStatus__Output as _nsmagent_v1_ConnectionStatus__Output } from '../../nsmagent/v1/ConnectionStatus';
import type { DisconnectRequest as _nsmagent_v1_DisconnectRequest, DisconnectRequest__Output as _nsmagent_v1_DisconnectRequest__Output } from '../../nsmagent/v1/DisconnectRequest';
import type { Empty as _google_protobuf_Empty, Empty__Output as _google_protobuf_Empty__Output } from '../../google/protobuf/Empty';
import type { StatusRequest as _nsmagent_v1_StatusRequest, StatusRequest__Output as _nsmagent_v1_StatusRequest__Output } from '../../nsmagent/v1/StatusRequest';
import type { StatusResponse as _nsmagent_v1_StatusResponse, StatusResponse__Output as _nsmagent_v1_StatusResponse__Output } from '../../nsmagent/v1/StatusResponse';

export interface AgentClient extends grpc.Client {
  Connect(argument: _nsmagent_v1_ConnectRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_nsmagent_v1_ConnectionStatus__Output>): grpc.ClientUnaryCall;
  Connect(argument: _nsmagent_v1_ConnectRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_nsmagent_v1_ConnectionStatus__Output>): grpc.ClientUnaryCall;
  Connect(argument: _nsmagent_v1_ConnectRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_nsmagent_v1_ConnectionStatus__Output>): grpc.ClientUnaryCall;
  Connect(argument: _nsmagent_v1_ConnectRequest, callback: grpc.requestCallback<_nsmagent_v1_ConnectionStatus__Output>): grpc.ClientUnaryCall;
  connect(argument: _nsmagent_v1_ConnectRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_nsmagent_v1_ConnectionStatus__Output>): grpc.ClientUnaryCall;
  connect(argument: _nsmagent_v1_ConnectRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_nsmagent_v1_ConnectionStatus__Output>): grpc.ClientUnaryCall;
  connect(argument: _nsmagent_v1_ConnectRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_nsmagent_v1_ConnectionStatus__Output>): grpc.ClientUnaryCall;
  connect(argument: _nsmagent_v1_ConnectRequest, callback: grpc.requestCallback<_nsmagent_v1_ConnectionStatus__Output>): grpc.ClientUnaryCall;
  
  Disconnect(argument: _nsmagent_v1_DisconnectRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_google_protobuf_Empty__Output>): grpc.ClientUnaryCall;
  Disconnect(argument: _nsmagent_v1_DisconnectRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_google_protobuf_Empty__Output>): grpc.ClientUnaryCall;
  Disconnect(argument: _nsmagent_v1_DisconnectRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_google_protobuf_Empty__Output>): grpc.ClientUnaryCall;
  Disconnect(argument: _nsmagent_v1_DisconnectRequest, callback: grpc.requestCallback<_google_protobuf_Empty__Output>): grpc.ClientUnaryCall;
  disconnect(argument: _nsmagent_v1_DisconnectRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_google_protobuf_Empty__Output>): grpc.ClientUnaryCall;
  disconnect(argument: _nsmagent_v1_DisconnectRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_google_protobuf_Empty__Output>): grpc.ClientUnaryCall;
  disconnect(argument: _nsmagent_v1_DisconnectRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_google_protobuf_Empty__Output>): grpc.ClientUnaryCall;
  disconnect(argument: _nsmagent_v1_DisconnectRequest, callback: grpc.requestCallback<_google_protobuf_Empty__Output>): grpc.ClientUnaryCall;
  
  Status(argument: _nsmagent_v1_StatusRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_nsmagent_v1_StatusResponse__Output>): grpc.ClientUnaryCall;
  Status(argument: _nsmagent_v1_StatusRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_nsmagent_v1_StatusResponse__Output>): grpc.ClientUnaryCall;
  Status(argument: _nsmagent_v1_StatusRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_nsmagent_v1_StatusResponse__Output>): grpc.ClientUnaryCall;
  Status(argument: _nsmagent_v1_StatusRequest, callback: grpc.requestCallback<_nsmagent_v1_StatusResponse__Output>): grpc.ClientUnaryCall;
  status(argument: _nsmagent_v1_StatusRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_nsmagent_v1_StatusResponse__Output>): grpc.ClientUnaryCall;
  status(argument: _nsmagent_v1_StatusRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_nsmagent_v1_StatusResponse__Output>): grpc.ClientUnaryCall;
  status(argument: _nsmagent_v1_StatusRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_nsmagent_v1_StatusResponse__Output>): grpc.ClientUnaryCall;
  status(argument: _nsmagent_v1_StatusRequest, callback: grpc.requestCallback<_nsmagent_v1_StatusResponse__Output>): grpc.ClientUnaryCall;
  
}

export interface AgentHandlers extends grpc.UntypedServiceImplementation {
  Connect: grpc.handleUnaryCall<_nsmagent_v1_ConnectRequest__Output, _nsmagent_v1_ConnectionStatus>;
  
  Disconnect: grpc.handleUnaryCall<_nsmagent_v1_DisconnectRequest__Output, _google_protobuf_Empty>;
  
  Status: grpc.handleUnaryCall<_nsmagent_v1_StatusRequest__Output, _nsmagent_v1_StatusResponse>;
  
}

export interface AgentDefinition extends grpc.ServiceDefinition {
  Connect: MethodDefinition<_nsmagent_v1_ConnectRequest, _nsmagent_v1_ConnectionStatus, _nsmagent_v1_ConnectRequest__Output, _nsmagent_v1_ConnectionStatus__Output>
  Disconnect: MethodDefinition<_nsmagent_v1_DisconnectRequest, _google_protobuf_Empty, _nsmagent_v1_DisconnectRequest__Output, _google_protobuf_Empty__Output>
  Status: MethodDefinition<_nsmagent_v1_StatusRequest, _nsmagent_v1_StatusResponse, _nsmagent_v1_StatusRequest__Output, _nsmagent_v1_StatusResponse__Output>
}
