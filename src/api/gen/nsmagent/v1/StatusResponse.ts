// Original file: proto/agent/agent.proto

import type { Timestamp as _google_protobuf_Timestamp, Timestamp__Output as _google_protobuf_Timestamp__Output } from '../../google/protobuf/Timestamp';
import type { EndpointStatus as _nsmagent_v1_EndpointStatus, EndpointStatus__Output as _nsmagent_v1_EndpointStatus__Output } from '../../nsmagent/v1/EndpointStatus';
import type { ConnectionStatus as _nsmagent_v1_ConnectionStatus, ConnectionStatus__Output as _nsmagent_v1_ConnectionStatus__Output } from '../../nsmagent/v1/ConnectionStatus';
import type { RegistryHealth as _nsmagent_v1_RegistryHealth, RegistryHealth__Output as _nsmagent_v1_RegistryHealth__Output } from '../../nsmagent/v1/RegistryHealth';
import type { SvidStatus as _nsmagent_v1_SvidStatus, SvidStatus__Output as _nsmagent_v1_SvidStatus__Output } from '../../nsmagent/v1/SvidStatus';
import type { FederationStatus as _nsmagent_v1_FederationStatus, FederationStatus__Output as _nsmagent_v1_FederationStatus__Output } from '../../nsmagent/v1/FederationStatus';
import type { HostDnsStatus as _nsmagent_v1_HostDnsStatus, HostDnsStatus__Output as _nsmagent_v1_HostDnsStatus__Output } from '../../nsmagent/v1/HostDnsStatus';

export interface StatusResponse {
  'name'?: (string);
  'version'?: (string);
  'started'?: (_google_protobuf_Timestamp | null);
  'registry'?: (string);
  'listen'?: (string)[];
  'identity'?: (string);
  'endpoints'?: (_nsmagent_v1_EndpointStatus)[];
  'connections'?: (_nsmagent_v1_ConnectionStatus)[];
  'url'?: (string);
  'tunnel_ip'?: (string);
  'registry_health'?: (_nsmagent_v1_RegistryHealth | null);
  'svid'?: (_nsmagent_v1_SvidStatus | null);
  'federation'?: (_nsmagent_v1_FederationStatus)[];
  'host_dns'?: (_nsmagent_v1_HostDnsStatus)[];
}

export interface StatusResponse__Output {
  'name': (string);
  'version': (string);
  'started': (_google_protobuf_Timestamp__Output | null);
  'registry': (string);
  'listen': (string)[];
  'identity': (string);
  'endpoints': (_nsmagent_v1_EndpointStatus__Output)[];
  'connections': (_nsmagent_v1_ConnectionStatus__Output)[];
  'url': (string);
  'tunnel_ip': (string);
  'registry_health': (_nsmagent_v1_RegistryHealth__Output | null);
  'svid': (_nsmagent_v1_SvidStatus__Output | null);
  'federation': (_nsmagent_v1_FederationStatus__Output)[];
  'host_dns': (_nsmagent_v1_HostDnsStatus__Output)[];
}
