/**
 * The NSM wire API: message types generated from proto/ (src/api/gen, never edited by hand)
 * and the runtime definitions loaded from the same .proto files.
 *
 * Messages are plain objects with proto field names (keepCase): `network_service`, `nextHop`,
 * `MTU`. Chain elements work on the permissive (input) types, where every field is optional;
 * decoded messages always carry every field (proto-loader `defaults: true`).
 */
import type * as ProtoLoader from '@grpc/proto-loader';
import type * as grpc from '@grpc/grpc-js';
import { grpcJs } from './grpc-js';
import { descriptor } from './descriptor';
import type { ProtoGrpcType as NsType } from './gen/networkservice';
import type { ProtoGrpcType as RegType } from './gen/registry';
import type { ProtoGrpcType as HealthType } from './gen/health';
import type { ProtoGrpcType as AgentType } from './gen/agent';
import type { ProtoGrpcType as IpamType } from './gen/ipam';

export type { Connection } from './gen/connection/Connection';
export type { Mechanism } from './gen/connection/Mechanism';
export type { Path } from './gen/connection/Path';
export type { PathSegment } from './gen/connection/PathSegment';
export type { ConnectionEvent } from './gen/connection/ConnectionEvent';
export type { MonitorScopeSelector } from './gen/connection/MonitorScopeSelector';
export type { ConnectionContext } from './gen/connectioncontext/ConnectionContext';
export type { IPContext } from './gen/connectioncontext/IPContext';
export type { Route } from './gen/connectioncontext/Route';
export type { PolicyRoute } from './gen/connectioncontext/PolicyRoute';
export type { IpNeighbor } from './gen/connectioncontext/IpNeighbor';
export type { DNSConfig } from './gen/connectioncontext/DNSConfig';
export type { DNSContext } from './gen/connectioncontext/DNSContext';
export type { NetworkServiceRequest } from './gen/networkservice/NetworkServiceRequest';
export type { Timestamp } from './gen/google/protobuf/Timestamp';
export type { NetworkService } from './gen/registry/NetworkService';
export type { NetworkServiceEndpoint } from './gen/registry/NetworkServiceEndpoint';
export type { NetworkServiceQuery } from './gen/registry/NetworkServiceQuery';
export type { NetworkServiceEndpointQuery } from './gen/registry/NetworkServiceEndpointQuery';
export type { NetworkServiceResponse } from './gen/registry/NetworkServiceResponse';
export type { NetworkServiceEndpointResponse } from './gen/registry/NetworkServiceEndpointResponse';
export type { Match } from './gen/registry/Match';
export type { Destination } from './gen/registry/Destination';
export type { PrefixRequest, PrefixRequest__Output } from './gen/ipam/PrefixRequest';
export type { PrefixResponse, PrefixResponse__Output } from './gen/ipam/PrefixResponse';
export type { IPAMClient } from './gen/ipam/IPAM';

/** Proto-loader options shared by the runtime and the generator (scripts/gen-proto.mjs). */
export const LOADER_OPTIONS: ProtoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

type Loaded = { ns: NsType; reg: RegType; health: HealthType; agent: AgentType; ipam: IpamType; defs: ProtoLoader.PackageDefinition };
let cached: Loaded | undefined;

/** Loads the .proto files once and returns the grpc-js service constructors and message types. */
export function api(): Loaded {
  if (!cached) {
    const protoLoader = require('@grpc/proto-loader') as typeof ProtoLoader;
    const defs = protoLoader.fromJSON(descriptor(), LOADER_OPTIONS);
    const loaded = grpcJs.loadPackageDefinition(defs);
    cached = {
      ns: loaded as unknown as NsType,
      reg: loaded as unknown as RegType,
      health: loaded as unknown as HealthType,
      agent: loaded as unknown as AgentType,
      ipam: loaded as unknown as IpamType,
      defs,
    };
  }
  return cached;
}

/**
 * Options every grpc-js channel of the agent starts from. Channelz (grpc-js's per-channel and
 * per-call statistics, on by default) is off: the agent serves no channelz service, and its
 * bookkeeping on every call (counters, call tracking, stream listeners) is on the connect path.
 */
export const CHANNEL_OPTIONS: grpc.ChannelOptions = { 'grpc.enable_channelz': 0 };

/** Options of every grpc-js server of the agent: no channelz (as above), up to 1000 streams per connection. */
export const SERVER_OPTIONS: grpc.ServerOptions = { 'grpc.enable_channelz': 0, 'grpc.max_concurrent_streams': 1000 };

/** Connection states as sent on the wire (proto enum names). */
export const State = { UP: 'UP', DOWN: 'DOWN', REFRESH_REQUESTED: 'REFRESH_REQUESTED', RESELECT_REQUESTED: 'RESELECT_REQUESTED' } as const;
export const EventType = { INITIAL_STATE_TRANSFER: 'INITIAL_STATE_TRANSFER', UPDATE: 'UPDATE', DELETE: 'DELETE' } as const;

/** Normalises an enum value that may arrive as its name or its number. */
export function stateName(s: unknown): keyof typeof State {
  const names = ['UP', 'DOWN', 'REFRESH_REQUESTED', 'RESELECT_REQUESTED'] as const;
  if (typeof s === 'number') return names[s] ?? 'UP';
  return (names as readonly string[]).includes(s as string) ? (s as keyof typeof State) : 'UP';
}
