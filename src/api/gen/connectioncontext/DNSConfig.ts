// Original file: proto/networkservice/connectioncontext.proto


export interface DNSConfig {
  'dns_server_ips'?: (string)[];
  'search_domains'?: (string)[];
}

export interface DNSConfig__Output {
  'dns_server_ips': (string)[];
  'search_domains': (string)[];
}
