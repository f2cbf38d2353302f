// Original file: proto/agent/agent.proto

import type { Mechanism as _connection_Mechanism, Mechanism__Output as _connection_Mechanism__Output } from '../../connection/Mechanism';

export interface TunnelStatus {
  'mechanism'?: (_connection_Mechanism | null);
  'device'?: (string);
}

export interface TunnelStatus__Output {
  'mechanism': (_connection_Mechanism__Output | null);
  'device': (string);
}
