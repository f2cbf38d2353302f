// Original file: proto/registry/registry.proto

import type { NetworkServiceLabels as _registry_NetworkServiceLabels, NetworkServiceLabels__Output as _registry_NetworkServiceLabels__Output } from '../registry/NetworkServiceLabels';
import type { Timestamp as _google_protobuf_Timestamp, Timestamp__Output as _google_protobuf_Timestamp__Output } from '../google/protobuf/Timestamp';

export interface NetworkServiceEndpoint {
  'name'?: (string);
  'network_service_names'?: (string)[];
  'network_service_labels'?: ({[key: string]: _registry_NetworkServiceLabels});
  'url'?: (string);
  'expiration_time'?: (_google_protobuf_Timestamp | null);
  'initial_registration_time'?: (_google_protobuf_Timestamp | null);
  'path_ids'?: (string)[];
}

export interface NetworkServiceEndpoint__Output {
  'name': (string);
  'network_service_names': (string)[];
  'network_service_labels': ({[key: string]: _registry_NetworkServiceLabels__Output});
  'url': (string);
  'expiration_time': (_google_protobuf_Timestamp__Output | null);
  'initial_registration_time': (_google_protobuf_Timestamp__Output | null);
  'path_ids': (string)[];
}
