// Original file: proto/networkservice/networkservice.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { Connection as _connection_Connection, Connection__Output as _connection_Connection__Output } from '../connection/Connection';
import type { Empty as _google_protobuf_Empty, Empty__Output as _google_protobuf_Empty__Output } from '../google/protobuf/Empty';
import type { NetworkServiceRequest as _networkservice_NetworkServiceRequest, NetworkServiceRequest__Output as _networkservice_NetworkServiceRequest__Output } from '../networkservice/NetworkServiceRequest';

export interface NetworkServiceClient extends grpc.Client {
  Close(argument: _connection_Connection, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_google_protobuf_Empty__Output>): grpc.ClientUnaryCall;
  Close(argument: _connection_Connection, metadata: grpc.Metadata, callback: grpc.requestCallback<_google_protobuf_Empty__Output>): grpc.ClientUnaryCall;
  Close(argument: _connection_Connection, options: grpc.CallOptions, callback: grpc.requestCallback<_google_protobuf_Empty__Output>): grpc.ClientUnaryCall;
  Close(argument: _connection_Connection, callback: grpc.requestCallback<_google_protobuf_Empty__Output>): grpc.ClientUnaryCall;
  
  Request(argument: _networkservice_NetworkServiceRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_connection_Connection__Output>): grpc.ClientUnaryCall;
  Request(argument: _networkservice_NetworkServiceRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_connection_Connection__Output>): grpc.ClientUnaryCall;
  Request(argument: _networkservice_NetworkServiceRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_connection_Connection__Output>): grpc.ClientUnaryCall;
  Request(argument: _networkservice_NetworkServiceRequest, callback: grpc.requestCallback<_connection_Connection__Output>): grpc.ClientUnaryCall;
  request(argument: _networkservice_NetworkServiceRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_connection_Connection__Output>): grpc.ClientUnaryCall;
  request(argument: _networkservice_NetworkServiceRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_connection_Connection__Output>): grpc.ClientUnaryCall;
  request(argument: _networkservice_NetworkServiceRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_connection_Connection__Output>): grpc.ClientUnaryCall;
  request(argument: _networkservice_NetworkServiceRequest, callback: grpc.requestCallback<_connection_Connection__Output>): grpc.ClientUnaryCall;
  
}

export interface NetworkServiceHandlers extends grpc.UntypedServiceImplementation {
  Close: grpc.handleUnaryCall<_connection_Connection__Output, _google_protobuf_Empty>;
  
  Request: grpc.handleUnaryCall<_networkservice_NetworkServiceRequest__Output, _connection_Connection>;
  
}

export interface NetworkServiceDefinition extends grpc.ServiceDefinition {
  Close: MethodDefinition<_connection_Connection, _google_protobuf_Empty, _connection_Connection__Output, _google_protobuf_Empty__Output>
  Request: MethodDefinition<_networkservice_NetworkServiceRequest, _connection_Connection, _networkservice_NetworkServiceRequest__Output, _connection_Connection__Output>
}
