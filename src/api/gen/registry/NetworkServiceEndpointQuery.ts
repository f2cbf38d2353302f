// Original file: proto/registry/registry.proto

import type { NetworkServiceEndpoint as _registry_NetworkServiceEndpoint, NetworkServiceEndpoint__Output as _registry_NetworkServiceEndpoint__Output } from '../registry/NetworkServiceEndpoint';

export interface NetworkServiceEndpointQuery {
  'network_service_endpoint'?: (_registry_NetworkServiceEndpoint | null);
  'watch'?: (boolean);
}

export interface NetworkServiceEndpointQuery__Output {
  'network_service_endpoint': (_registry_NetworkServiceEndpoint__Output | null);
  'watch': (boolean);
}
