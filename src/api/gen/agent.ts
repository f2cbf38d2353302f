// @ts-nocheck
import type * as grpc from '@grpc/grpc-js';
import type { EnumTypeDefinition, MessageTypeDefinition } from '@grpc/proto-loader';

import type { Connection as _connection_Connection, Connection__Output as _connection_Connection__Output } from './connection/Connection';
import type { ConnectionEvent as _connection_ConnectionEvent, ConnectionEvent__Output as _connection_ConnectionEvent__Output } from './connection/ConnectionEvent';
import type { Mechanism as _connection_Mechanism, Mechanism__Output as _connection_Mechanism__Output } from './connection/Mechanism';
import type { MonitorConnectionClient as _connection_MonitorConnectionClient, MonitorConnectionDefinition as _connection_MonitorConnectionDefinition } from './connection/MonitorConnection';
import type { MonitorScopeSelector as _connection_MonitorScopeSelector, MonitorScopeSelector__Output as _connection_MonitorScopeSelector__Output } from './connection/MonitorScopeSelector';
import type { Path as _connection_Path, Path__Output as _connection_Path__Output } from './connection/Path';
import type { PathSegment as _connection_PathSegment, PathSegment__Output as _connection_PathSegment__Output } from './connection/PathSegment';
import type { ConnectionContext as _connectioncontext_ConnectionContext, ConnectionContext__Output as _connectioncontext_ConnectionContext__Output } from './connectioncontext/ConnectionContext';
import type { DNSConfig as _connectioncontext_DNSConfig, DNSConfig__Output as _connectioncontext_DNSConfig__Output } from './connectioncontext/DNSConfig';
import type { DNSContext as _connectioncontext_DNSContext, DNSContext__Output as _connectioncontext_DNSContext__Output } from './connectioncontext/DNSContext';
import type { EthernetContext as _connectioncontext_EthernetContext, EthernetContext__Output as _connectioncontext_EthernetContext__Output } from './connectioncontext/EthernetContext';
import type { ExtraPrefixRequest as _connectioncontext_ExtraPrefixRequest, ExtraPrefixRequest__Output as _connectioncontext_ExtraPrefixRequest__Output } from './connectioncontext/ExtraPrefixRequest';
import type { IPContext as _connectioncontext_IPContext, IPContext__Output as _connectioncontext_IPContext__Output } from './connectioncontext/IPContext';
import type { IpFamily as _connectioncontext_IpFamily, IpFamily__Output as _connectioncontext_IpFamily__Output } from './connectioncontext/IpFamily';
import type { IpNeighbor as _connectioncontext_IpNeighbor, IpNeighbor__Output as _connectioncontext_IpNeighbor__Output } from './connectioncontext/IpNeighbor';
import type { PolicyRoute as _connectioncontext_PolicyRoute, PolicyRoute__Output as _connectioncontext_PolicyRoute__Output } from './connectioncontext/PolicyRoute';
import type { Route as _connectioncontext_Route, Route__Output as _connectioncontext_Route__Output } from './connectioncontext/Route';
import type { Empty as _google_protobuf_Empty, Empty__Output as _google_protobuf_Empty__Output } from './google/protobuf/Empty';
import type { Timestamp as _google_protobuf_Timestamp, Timestamp__Output as _google_protobuf_Timestamp__Output } from './google/protobuf/Timestamp';
import type { AgentClient as _nsmagent_v1_AgentClient, AgentDefinition as _nsmagent_v1_AgentDefinition } from './nsmagent/v1/Agent';
import type { ConnectRequest as _nsmagent_v1_ConnectRequest, ConnectRequest__Output as _nsmagent_v1_ConnectRequest__Output } from './nsmagent/v1/ConnectRequest';
import type { ConnectionStatus as _nsmagent_v1_ConnectionStatus, ConnectionStatus__Output as _nsmagent_v1_ConnectionStatus__Output } from './nsmagent/v1/ConnectionStatus';
import type { DisconnectRequest as _nsmagent_v1_DisconnectRequest, DisconnectRequest__Output as _nsmagent_v1_DisconnectRequest__Output } from './nsmagent/v1/DisconnectRequest';
import type { EndpointStatus as _nsmagent_v1_EndpointStatus, EndpointStatus__Output as _nsmagent_v1_EndpointStatus__Output } from './nsmagent/v1/EndpointStatus';
import type { FederationStatus as _nsmagent_v1_FederationStatus, FederationStatus__Output as _nsmagent_v1_FederationStatus__Output } from './nsmagent/v1/FederationStatus';
import type { HealStatus as _nsmagent_v1_HealStatus, HealStatus__Output as _nsmagent_v1_HealStatus__Output } from './nsmagent/v1/HealStatus';
import type { HostDnsStatus as _nsmagent_v1_HostDnsStatus, HostDnsStatus__Output as _nsmagent_v1_HostDnsStatus__Output } from './nsmagent/v1/HostDnsStatus';
import type { RegistryHealth as _nsmagent_v1_RegistryHealth, RegistryHealth__Output as _nsmagent_v1_RegistryHealth__Output } from './nsmagent/v1/RegistryHealth';
import type { RouteStatus as _nsmagent_v1_RouteStatus, RouteStatus__Output as _nsmagent_v1_RouteStatus__Output } from './nsmagent/v1/RouteStatus';
import type { StatusRequest as _nsmagent_v1_StatusRequest, StatusRequest__Output as _nsmagent_v1_StatusRequest__Output } from './nsmagent/v1/StatusRequest';
import type { StatusResponse as _nsmagent_v1_StatusResponse, StatusResponse__Output as _nsmagent_v1_StatusResponse__Output } from './nsmagent/v1/StatusResponse';
import type { SvidStatus as _nsmagent_v1_SvidStatus, SvidStatus__Output as _nsmagent_v1_SvidStatus__Output } from './nsmagent/v1/SvidStatus';
import type { TrafficStatus as _nsmagent_v1_TrafficStatus, TrafficStatus__Output as _nsmagent_v1_TrafficStatus__Output } from './nsmagent/v1/TrafficStatus';
import type { TunnelStatus as _nsmagent_v1_TunnelStatus, TunnelStatus__Output as _nsmagent_v1_TunnelStatus__Output } from './nsmagent/v1/TunnelStatus';
import type { Vl3EndpointStatus as _nsmagent_v1_Vl3EndpointStatus, Vl3EndpointStatus__Output as _nsmagent_v1_Vl3EndpointStatus__Output } from './nsmagent/v1/Vl3EndpointStatus';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  connection: {
    Connection: MessageTypeDefinition<_connection_Connection, _connection_Connection__Output>
    ConnectionEvent: MessageTypeDefinition<_connection_ConnectionEvent, _connection_ConnectionEvent__Output>
    ConnectionEventType: EnumTypeDefinition
    Mechanism: MessageTypeDefinition<_connection_Mechanism, _connection_Mechanism__Output>
    MonitorConnection: SubtypeConstructor<typeof grpc.Client, _connection_MonitorConnectionClient> & { service: _connection_MonitorConnectionDefinition }
    MonitorScopeSelector: MessageTypeDefinition<_connection_MonitorScopeSelector, _connection_MonitorScopeSelector__Output>
    Path: MessageTypeDefinition<_connection_Path, _connection_Path__Output>
    PathSegment: MessageTypeDefinition<_connection_PathSegment, _connection_PathSegment__Output>
    State: EnumTypeDefinition
  }
  connectioncontext: {
    ConnectionContext: MessageTypeDefinition<_connectioncontext_ConnectionContext, _connectioncontext_ConnectionContext__Output>
    DNSConfig: MessageTypeDefinition<_connectioncontext_DNSConfig, _connectioncontext_DNSConfig__Output>
    DNSContext: MessageTypeDefinition<_connectioncontext_DNSContext, _connectioncontext_DNSContext__Output>
    EthernetContext: MessageTypeDefinition<_connectioncontext_EthernetContext, _connectioncontext_EthernetContext__Output>
    ExtraPrefixRequest: MessageTypeDefinition<_connectioncontext_ExtraPrefixRequest, _connectioncontext_ExtraPrefixRequest__Output>
    IPContext: MessageTypeDefinition<_connectioncontext_IPContext, _connectioncontext_IPContext__Output>
    IpFamily: MessageTypeDefinition<_connectioncontext_IpFamily, _connectioncontext_IpFamily__Output>
    IpNeighbor: MessageTypeDefinition<_connectioncontext_IpNeighbor, _connectioncontext_IpNeighbor__Output>
    PolicyRoute: MessageTypeDefinition<_connectioncontext_PolicyRoute, _connectioncontext_PolicyRoute__Output>
    Route: MessageTypeDefinition<_connectioncontext_Route, _connectioncontext_Route__Output>
  }
  google: {
    protobuf: {
      Empty: MessageTypeDefinition<_google_protobuf_Empty, _google_protobuf_Empty__Output>
      Timestamp: MessageTypeDefinition<_google_protobuf_Timestamp, _google_protobuf_Timestamp__Output>
    }
  }
  nsmagent: {
    v1: {
      Agent: SubtypeConstructor<typeof grpc.Client, _nsmagent_v1_AgentClient> & { service: _nsmagent_v1_AgentDefinition }
      ConnectRequest: MessageTypeDefinition<_nsmagent_v1_ConnectRequest, _nsmagent_v1_ConnectRequest__Output>
      ConnectionStatus: MessageTypeDefinition<_nsmagent_v1_ConnectionStatus, _nsmagent_v1_ConnectionStatus__Output>
      DisconnectRequest: MessageTypeDefinition<_nsmagent_v1_DisconnectRequest, _nsmagent_v1_DisconnectRequest__Output>
      EndpointStatus: MessageTypeDefinition<_nsmagent_v1_EndpointStatus, _nsmagent_v1_EndpointStatus__Output>
      FederationStatus: MessageTypeDefinition<_nsmagent_v1_FederationStatus, _nsmagent_v1_FederationStatus__Output>
      HealStatus: MessageTypeDefinition<_nsmagent_v1_HealStatus, _nsmagent_v1_HealStatus__Output>
      HostDnsStatus: MessageTypeDefinition<_nsmagent_v1_HostDnsStatus, _nsmagent_v1_HostDnsStatus__Output>
      RegistryHealth: MessageTypeDefinition<_nsmagent_v1_RegistryHealth, _nsmagent_v1_RegistryHealth__Output>
      RouteStatus: MessageTypeDefinition<_nsmagent_v1_RouteStatus, _nsmagent_v1_RouteStatus__Output>
      StatusRequest: MessageTypeDefinition<_nsmagent_v1_StatusRequest, _nsmagent_v1_StatusRequest__Output>
      StatusResponse: MessageTypeDefinition<_nsmagent_v1_StatusResponse, _nsmagent_v1_StatusResponse__Output>
      SvidStatus: MessageTypeDefinition<_nsmagent_v1_SvidStatus, _nsmagent_v1_SvidStatus__Output>
      TrafficStatus: MessageTypeDefinition<_nsmagent_v1_TrafficStatus, _nsmagent_v1_TrafficStatus__Output>
      TunnelStatus: MessageTypeDefinition<_nsmagent_v1_TunnelStatus, _nsmagent_v1_TunnelStatus__Output>
      Vl3EndpointStatus: MessageTypeDefinition<_nsmagent_v1_Vl3EndpointStatus, _nsmagent_v1_Vl3EndpointStatus__Output>
    }
  }
}

