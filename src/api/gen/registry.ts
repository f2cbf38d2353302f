// @ts-nocheck
import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { Empty as _google_protobuf_Empty, Empty__Output as _google_protobuf_Empty__Output } from './google/protobuf/Empty';
import type { Timestamp as _google_protobuf_Timestamp, Timestamp__Output as _google_protobuf_Timestamp__Output } from './google/protobuf/Timestamp';
import type { Destination as _registry_Destination, Destination__Output as _registry_Destination__Output } from './registry/Destination';
import type { Match as _registry_Match, Match__Output as _registry_Match__Output } from './registry/Match';
import type { Metadata as _registry_Metadata, Metadata__Output as _registry_Metadata__Output } from './registry/Metadata';
import type { NetworkService as _registry_NetworkService, NetworkService__Output as _registry_NetworkService__Output } from './registry/NetworkService';
import type { NetworkServiceEndpoint as _registry_NetworkServiceEndpoint, NetworkServiceEndpoint__Output as _registry_NetworkServiceEndpoint__Output } from './registry/NetworkServiceEndpoint';
import type { NetworkServiceEndpointQuery as _registry_NetworkServiceEndpointQuery, NetworkServiceEndpointQuery__Output as _registry_NetworkServiceEndpointQuery__Output } from './registry/NetworkServiceEndpointQuery';
import type { NetworkServiceEndpointRegistryClient as _registry_NetworkServiceEndpointRegistryClient, NetworkServiceEndpointRegistryDefinition as _registry_NetworkServiceEndpointRegistryDefinition } from './registry/NetworkServiceEndpointRegistry';
import type { NetworkServiceEndpointResponse as _registry_NetworkServiceEndpointResponse, NetworkServiceEndpointResponse__Output as _registry_NetworkServiceEndpointResponse__Output } from './registry/NetworkServiceEndpointResponse';
import type { NetworkServiceLabels as _registry_NetworkServiceLabels, NetworkServiceLabels__Output as _registry_NetworkServiceLabels__Output } from './registry/NetworkServiceLabels';
import type { NetworkServiceQuery as _registry_NetworkServiceQuery, NetworkServiceQuery__Output as _registry_NetworkServiceQuery__Output } from './registry/NetworkServiceQuery';
import type { NetworkServiceRegistryClient as _registry_NetworkServiceRegistryClient, NetworkServiceRegistryDefinition as _registry_NetworkServiceRegistryDefinition } from './registry/NetworkServiceRegistry';
import type { NetworkServiceResponse as _registry_NetworkServiceResponse, NetworkServiceResponse__Output as _registry_NetworkServiceResponse__Output } from './registry/NetworkServiceResponse';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  google: {
    protobuf: {
      Empty: MessageTypeDefinition<_google_protobuf_Empty, _google_protobuf_Empty__Output>
      Timestamp: MessageTypeDefinition<_google_protobuf_Timestamp, _google_protobuf_Timestamp__Output>
    }
  }
  registry: {
    Destination: MessageTypeDefinition<_registry_Destination, _registry_Destination__Output>
    Match: MessageTypeDefinition<_registry_Match, _registry_Match__Output>
    Metadata: MessageTypeDefinition<_registry_Metadata, _registry_Metadata__Output>
    NetworkService: MessageTypeDefinition<_registry_NetworkService, _registry_NetworkService__Output>
    NetworkServiceEndpoint: MessageTypeDefinition<_registry_NetworkServiceEndpoint, _registry_NetworkServiceEndpoint__Output>
    NetworkServiceEndpointQuery: MessageTypeDefinition<_registry_NetworkServiceEndpointQuery, _registry_NetworkServiceEndpointQuery__Output>
    NetworkServiceEndpointRegistry: SubtypeConstructor<typeof grpc.Client, _registry_NetworkServiceEndpointRegistryClient> & { service: _registry_NetworkServiceEndpointRegistryDefinition }
    NetworkServiceEndpointResponse: MessageTypeDefinition<_registry_NetworkServiceEndpointResponse, _registry_NetworkServiceEndpointResponse__Output>
    NetworkServiceLabels: MessageTypeDefinition<_registry_NetworkServiceLabels, _registry_NetworkServiceLabels__Output>
    NetworkServiceQuery: MessageTypeDefinition<_registry_NetworkServiceQuery, _registry_NetworkServiceQuery__Output>
    NetworkServiceRegistry: SubtypeConstructor<typeof grpc.Client, _registry_NetworkServiceRegistryClient> & { service: _registry_NetworkServiceRegistryDefinition }
    NetworkServiceResponse: MessageTypeDefinition<_registry_NetworkServiceResponse, _registry_NetworkServiceResponse__Output>
  }
}

