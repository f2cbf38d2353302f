/**
 * A kind of hosted endpoint: what its endpoint chain does between the frame every hosted
 * endpoint shares (updatepath, updatetoken ... trimpath: src/agent/chains.ts endpointChain).
 * Kinds are listed in ./kinds.ts and chosen by EndpointConfig.kind.
 */
import type { NetworkServiceServer } from '../../core/networkservice';
import type { Records } from '../../core/records';
import type { IpamRecord } from '../../networkservice/ipam/server';
import type { TokenSource } from '../../core/token';
import type { EndpointConfig } from '../config';

export interface EndpointKindEnv {
  /** The agent's name (the nodeName label). */
  nodeName: string;
  tokens: TokenSource;
  /** The namespace file the endpoint side lands in. */
  netnsPath: string;
  /** Address reservations of this endpoint, kept across agent restarts. */
  ipamRecords: Records<IpamRecord>;
}

export interface EndpointKindParts {
  /** The kind's elements of the endpoint chain, in order. */
  elements: NetworkServiceServer[];
  /** Connections the endpoint serves now (for status). */
  connectionCount(): number;
  /** Frees what a reservation record of a previous run holds, by its key within this endpoint. */
  release(key: string): void;
}

export type EndpointKind = (cfg: EndpointConfig, env: EndpointKindEnv) => EndpointKindParts;
