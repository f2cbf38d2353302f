// Original file: proto/agent/agent.proto

import type { Vl3EndpointStatus as _nsmagent_v1_Vl3EndpointStatus, Vl3EndpointStatus__Output as _nsmagent_v1_Vl3EndpointStatus__Output } from '../../nsmagent/v1/Vl3EndpointStatus';

export interface EndpointStatus {
  'name'?: (string);
  'services'?: (string)[];
  'cidr'?: (string);
  'netns'?: (string);
  'url'?: (string);
  'labels'?: ({[key: string]: string});
  'connections'?: (number);
  'vl3'?: (_nsmagent_v1_Vl3EndpointStatus | null);
}

export interface EndpointStatus__Output {
  'name': (string);
  'services': (string)[];
  'cidr': (string);
  'netns': (string);
  'url': (string);
  'labels': ({[key: string]: string});
  'connections': (number);
  'vl3': (_nsmagent_v1_Vl3EndpointStatus__Output | null);
}
