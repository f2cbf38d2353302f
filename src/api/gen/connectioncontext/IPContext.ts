// Original file: proto/networkservice/connectioncontext.proto

import type { Route as _connectioncontext_Route, Route__Output as _connectioncontext_Route__Output } from '../connectioncontext/Route';
import type { IpNeighbor as _connectioncontext_IpNeighbor, IpNeighbor__Output as _connectioncontext_IpNeighbor__Output } from '../connectioncontext/IpNeighbor';
import type { ExtraPrefixRequest as _connectioncontext_ExtraPrefixRequest, ExtraPrefixRequest__Output as _connectioncontext_ExtraPrefixRequest__Output } from '../connectioncontext/ExtraPrefixRequest';
import type { PolicyRoute as _connectioncontext_PolicyRoute, PolicyRoute__Output as _connectioncontext_PolicyRoute__Output } from '../connectioncontext/PolicyRoute';

export interface IPContext {
  'src_ip_addrs'?: (string)[];
  'dst_ip_addrs'?: (string)[];
  'src_ip_required'?: (boolean);
  'dst_ip_required'?: (boolean);
  'src_routes'?: (_connectioncontext_Route)[];
  'dst_routes'?: (_connectioncontext_Route)[];
  'excluded_prefixes'?: (string)[];
  'ip_neighbors'?: (_connectioncontext_IpNeighbor)[];
  'extra_prefix_request'?: (_connectioncontext_ExtraPrefixRequest)[];
  'extra_prefixes'?: (string)[];
  'policies'?: (_connectioncontext_PolicyRoute)[];
}

export interface IPContext__Output {
  'src_ip_addrs': (string)[];
  'dst_ip_addrs': (string)[];
  'src_ip_required': (boolean);
  'dst_ip_required': (boolean);
  'src_routes': (_connectioncontext_Route__Output)[];
  'dst_routes': (_connectioncontext_Route__Output)[];
  'excluded_prefixes': (string)[];
  'ip_neighbors': (_connectioncontext_IpNeighbor__Output)[];
  'extra_prefix_request': (_connectioncontext_ExtraPrefixRequest__Output)[];
  'extra_prefixes': (string)[];
  'policies': (_connectioncontext_PolicyRoute__Output)[];
}
