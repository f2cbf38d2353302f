// Original file: proto/networkservice/networkservice.proto

import type { Connection as _connection_Connection, Connection__Output as _connection_Connection__Output } from '../connection/Connection';
import type { Mechanism as _connection_Mechanism, Mechanism__Output as _connection_Mechanism__Output } from '../connection/Mechanism';

export interface NetworkServiceRequest {
  'connection'?: (_connection_Connection | null);
  'mechanism_preferences'?: (_connection_Mechanism)[];
}

export interface NetworkServiceRequest__Output {
  'connection': (_connection_Connection__Output | null);
  'mechanism_preferences': (_connection_Mechanism__Output)[];
}
