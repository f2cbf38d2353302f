// Original file: proto/agent/agent.proto

import type { Timestamp as _google_protobuf_Timestamp, Timestamp__Output as _google_protobuf_Timestamp__Output } from '../../google/protobuf/Timestamp';

export interface RegistryHealth {
  'url'?: (string);
  'state'?: (string);
  'since'?: (_google_protobuf_Timestamp | null);
  'error'?: (string);
}

export interface RegistryHealth__Output {
  'url': (string);
  'state': (string);
  'since': (_google_protobuf_Timestamp__Output | null);
  'error': (string);
}
