// Original file: proto/networkservice/connection.proto

import type { PathSegment as _connection_PathSegment, PathSegment__Output as _connection_PathSegment__Output } from '../connection/PathSegment';

export interface MonitorScopeSelector {
  'path_segments'?: (_connection_PathSegment)[];
  'network_services'?: (string)[];
}

export interface MonitorScopeSelector__Output {
  'path_segments': (_connection_PathSegment__Output)[];
  'network_services': (string)[];
}
