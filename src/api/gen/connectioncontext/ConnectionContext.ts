// Original file: proto/networkservice/connectioncontext.proto

import type { IPContext as _connectioncontext_IPContext, IPContext__Output as _connectioncontext_IPContext__Output } from '../connectioncontext/IPContext';
import type { DNSContext as _connectioncontext_DNSContext, DNSContext__Output as _connectioncontext_DNSContext__Output } from '../connectioncontext/DNSContext';
import type { EthernetContext as _connectioncontext_EthernetContext, EthernetContext__Output as _connectioncontext_EthernetContext__Output } from '../connectioncontext/EthernetContext';

export interface ConnectionContext {
  'ip_context'?: (_connectioncontext_IPContext | null);
  'dns_context'?: (_connectioncontext_DNSContext | null);
  'ethernet_context'?: (_connectioncontext_EthernetContext | null);
  'extra_context'?: ({[key: string]: string});
  'MTU'?: (number);
}

export interface ConnectionContext__Output {
  'ip_context': (_connectioncontext_IPContext__Output | null);
  'dns_context': (_connectioncontext_DNSContext__Output | null);
  'ethernet_context': (_connectioncontext_EthernetContext__Output | null);
  'extra_context': ({[key: string]: string});
  'MTU': (number);
}
