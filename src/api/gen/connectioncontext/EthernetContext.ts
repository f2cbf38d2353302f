// Original file: proto/networkservice/connectioncontext.proto


export interface EthernetContext {
  'src_mac'?: (string);
  'dst_mac'?: (string);
  'vlan_tag'?: (number);
}

export interface EthernetContext__Output {
  'src_mac': (string);
  'dst_mac': (string);
  'vlan_tag': (number);
}
