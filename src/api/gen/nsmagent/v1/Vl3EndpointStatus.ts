// Original file: proto/agent/agent.proto


export interface Vl3EndpointStatus {
  'prefixes'?: (string)[];
  'addresses'?: (string)[];
  'members'?: (number);
  'peers'?: (string)[];
  'names'?: (string)[];
}

export interface Vl3EndpointStatus__Output {
  'prefixes': (string)[];
  'addresses': (string)[];
  'members': (number);
  'peers': (string)[];
  'names': (string)[];
}
