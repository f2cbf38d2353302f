// Original file: proto/ipam/ipam.proto

import type { Type as _ipam_Type, Type__Output as _ipam_Type__Output } from '../ipam/Type';

export interface PrefixRequest {
  'type'?: (_ipam_Type);
  'prefix'?: (string);
  'exclude_prefixes'?: (string)[];
}

export interface PrefixRequest__Output {
  'type': (_ipam_Type__Output);
  'prefix': (string);
  'exclude_prefixes': (string)[];
}
