// Original file: proto/agent/agent.proto


export interface HostDnsStatus {
  'connection_id'?: (string);
  'interface'?: (string);
  'servers'?: (string)[];
  'domains'?: (string)[];
  'wired'?: (boolean);
  'reason'?: (string);
}

export interface HostDnsStatus__Output {
  'connection_id': (string);
  'interface': (string);
  'servers': (string)[];
  'domains': (string)[];
  'wired': (boolean);
  'reason': (string);
}
