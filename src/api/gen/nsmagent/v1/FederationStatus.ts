// Original file: proto/agent/agent.proto

import type { Timestamp as _google_protobuf_Timestamp, Timestamp__Output as _google_protobuf_Timestamp__Output } from '../../google/protobuf/Timestamp';
import type { Long } from '@grpc/proto-loader';

export interface FederationStatus {
  'trust_domain'?: (string);
  'url'?: (string);
  'endpoint_id'?: (string);
  'state'?: (string);
  'authorities'?: (number);
  'sequence'?: (number | string | Long);
  'fetched'?: (_google_protobuf_Timestamp | null);
  'error'?: (string);
  'error_code'?: (string);
  'next_refresh'?: (_google_protobuf_Timestamp | null);
}

export interface FederationStatus__Output {
  'trust_domain': (string);
  'url': (string);
  'endpoint_id': (string);
  'state': (string);
  'authorities': (number);
  'sequence': (string);
  'fetched': (_google_protobuf_Timestamp__Output | null);
  'error': (string);
  'error_code': (string);
  'next_refresh': (_google_protobuf_Timestamp__Output | null);
}
