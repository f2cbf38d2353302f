// Original file: proto/agent/agent.proto

import type { Connection as _connection_Connection, Connection__Output as _connection_Connection__Output } from '../../connection/Connection';
import type { Timestamp as _google_protobuf_Timestamp, Timestamp__Output as _google_protobuf_Timestamp__Output } from '../../google/protobuf/Timestamp';
import type { TunnelStatus as _nsmagent_v1_TunnelStatus, TunnelStatus__Output as _nsmagent_v1_TunnelStatus__Output } from '../../nsmagent/v1/TunnelStatus';
import type { RouteStatus as _nsmagent_v1_RouteStatus, RouteStatus__Output as _nsmagent_v1_RouteStatus__Output } from '../../nsmagent/v1/RouteStatus';
import type { HealStatus as _nsmagent_v1_HealStatus, HealStatus__Output as _nsmagent_v1_HealStatus__Output } from '../../nsmagent/v1/HealStatus';
import type { TrafficStatus as _nsmagent_v1_TrafficStatus, TrafficStatus__Output as _nsmagent_v1_TrafficStatus__Output } from '../../nsmagent/v1/TrafficStatus';

export interface ConnectionStatus {
  'connection'?: (_connection_Connection | null);
  'origin'?: (string);
  'created'?: (_google_protobuf_Timestamp | null);
  'netns'?: (string);
  'interface'?: (string);
  'remote'?: (_nsmagent_v1_TunnelStatus | null);
  'direction'?: (string);
  'route'?: (_nsmagent_v1_RouteStatus | null);
  'client_node'?: (string);
  'last_heal'?: (_nsmagent_v1_HealStatus | null);
  'traffic'?: (_nsmagent_v1_TrafficStatus | null);
}

export interface ConnectionStatus__Output {
  'connection': (_connection_Connection__Output | null);
  'origin': (string);
  'created': (_google_protobuf_Timestamp__Output | null);
  'netns': (string);
  'interface': (string);
  'remote': (_nsmagent_v1_TunnelStatus__Output | null);
  'direction': (string);
  'route': (_nsmagent_v1_RouteStatus__Output | null);
  'client_node': (string);
  'last_heal': (_nsmagent_v1_HealStatus__Output | null);
  'traffic': (_nsmagent_v1_TrafficStatus__Output | null);
}
