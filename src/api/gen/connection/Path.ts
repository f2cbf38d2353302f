// Original file: proto/networkservice/connection.proto

import type { PathSegment as _connection_PathSegment, PathSegment__Output as _connection_PathSegment__Output } from '../connection/PathSegment';

export interface Path {
  'index'?: (number);
  'path_segments'?: (_connection_PathSegment)[];
}

export interface Path__Output {
  'index': (number);
  'path_segments': (_connection_PathSegment__Output)[];
}
