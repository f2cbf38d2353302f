// Original file: proto/agent/agent.proto

import type { Timestamp as _google_protobuf_Timestamp, Timestamp__Output as _google_protobuf_Timestamp__Output } from '../../google/protobuf/Timestamp';

export interface HealStatus {
  'started'?: (_google_protobuf_Timestamp | null);
  'trigger'?: (string);
  'detail'?: (string);
  'attempts'?: (number);
  'reselected'?: (boolean);
  'recovered'?: (_google_protobuf_Timestamp | null);
  'count'?: (number);
}

export interface HealStatus__Output {
  'started': (_google_protobuf_Timestamp__Output | null);
  'trigger': (string);
  'detail': (string);
  'attempts': (number);
  'reselected': (boolean);
  'recovered': (_google_protobuf_Timestamp__Output | null);
  'count': (number);
}
