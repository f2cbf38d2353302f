// Original file: proto/registry/registry.proto

import type { Match as _registry_Match, Match__Output as _registry_Match__Output } from '../registry/Match';

export interface NetworkService {
  'name'?: (string);
  'payload'?: (string);
  'matches'?: (_registry_Match)[];
  'path_ids'?: (string)[];
}

export interface NetworkService__Output {
  'name': (string);
  'payload': (string);
  'matches': (_registry_Match__Output)[];
  'path_ids': (string)[];
}
