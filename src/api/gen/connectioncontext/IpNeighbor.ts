// Original file: proto/networkservice/connectioncontext.proto


export interface IpNeighbor {
  'ip'?: (string);
  'hardware_address'?: (string);
}

export interface IpNeighbor__Output {
  'ip': (string);
  'hardware_address': (string);
}
