// Original file: proto/registry/registry.proto

import type { NetworkService as _registry_NetworkService, NetworkService__Output as _registry_NetworkService__Output } from '../registry/NetworkService';

export interface NetworkServiceResponse {
  'network_service'?: (_registry_NetworkService | null);
  'deleted'?: (boolean);
}

export interface NetworkServiceResponse__Output {
  'network_service': (_registry_NetworkService__Output | null);
  'deleted': (boolean);
}
