// Original file: proto/agent/agent.proto

import type { Timestamp as _google_protobuf_Timestamp, Timestamp__Output as _google_protobuf_Timestamp__Output } from '../../google/protobuf/Timestamp';

export interface SvidStatus {
  'spiffe_id'?: (string);
  'expires'?: (_google_protobuf_Timestamp | null);
  'source'?: (string);
}

export interface SvidStatus__Output {
  'spiffe_id': (string);
  'expires': (_google_protobuf_Timestamp__Output | null);
  'source': (string);
}
