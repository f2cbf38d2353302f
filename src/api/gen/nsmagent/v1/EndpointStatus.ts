// Original file: proto/agent/agent.proto


export interface EndpointStatus {
  'name'?: (string);
  'services'?: (string)[];
  'cidr'?: (string);
  'netns'?: (string);
  'url'?: (string);
  'labels'?: ({[key: string]: string});
  'connections'?: (number);
}

export interface EndpointStatus__Output {
  'name': (string);
  'services': (string)[];
  'cidr': (string);
  'netns': (string);
  'url': (string);
  'labels': ({[key: string]: string});
  'connections': (number);
}
