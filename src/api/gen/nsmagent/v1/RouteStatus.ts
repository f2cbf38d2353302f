// Original file: proto/agent/agent.proto


export interface RouteStatus {
  'mechanism'?: (string);
  'peer_agent'?: (string);
  'peer_host'?: (string);
  'peer_url'?: (string);
  'device'?: (string);
}

export interface RouteStatus__Output {
  'mechanism': (string);
  'peer_agent': (string);
  'peer_host': (string);
  'peer_url': (string);
  'device': (string);
}
