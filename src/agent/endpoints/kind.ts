/**
 * A kind of hosted endpoint: what its endpoint chain does between the frame every hosted
 * endpoint shares (updatepath, updatetoken ... trimpath: src/agent/chains.ts endpointChain).
 * Kinds are listed in ./kinds.ts and chosen by EndpointConfig.kind.
 */
import type { Connection, NetworkServiceEndpoint } from '../../api';
import type { Ctx } from '../../core/ctx';
import type { Logger } from '../../core/log';
import type { NetworkServiceClient, NetworkServiceServer } from '../../core/networkservice';
import type { Records } from '../../core/records';
import type { NseRegistry } from '../../core/registry';
import type { IpamRecord } from '../../networkservice/ipam/server';
import type { PassthroughRecord } from '../../networkservice/passthrough';
import type { TokenSource } from '../../core/token';
import type { EndpointConfig } from '../config';
import type { HeldConnections } from '../held';

/** A prefix leased from a vl3-ipam server, kept while the lease lives (see src/vl3/ipam). */
export interface PrefixSource {
  /** The prefix held now; undefined until the first answer. */
  readonly prefix: string | undefined;
  /** Called with each new prefix (the first, and a different one after a reconnect). */
  onPrefix(cb: (prefix: string, excluded: string[]) => void): () => void;
  /** Resolves with the current prefix, or the first one to come; rejects on abort or close(). */
  ready(signal?: AbortSignal): Promise<string>;
  /** Ends the lease (the server frees the prefix) and stops reconnecting. */
  close(): void;
}

/** What a vL3 endpoint keeps across agent restarts, by endpoint name. */
export interface Vl3Record {
  expires: number;
  /** The prefixes last leased, one per vl3-ipam server in order ('' for none yet). */
  prefixes: string[];
}

export interface EndpointKindEnv {
  /** The agent's name (the nodeName label). */
  nodeName: string;
  tokens: TokenSource;
  /** The namespace file the endpoint side lands in. */
  netnsPath: string;
  /** Address reservations of this endpoint, kept across agent restarts. */
  ipamRecords: Records<IpamRecord>;
  /** A passthrough endpoint's passages, kept across agent restarts; absent: not kept. */
  passthroughRecords?: Records<PassthroughRecord>;
  log: Logger;
  ctx: () => Ctx;
  /** The registry of endpoints (a vL3 endpoint finds and watches its peers there). */
  nse: NseRegistry;
  /** The agent's held connections (a vL3 endpoint's connections to its peers). */
  held: () => HeldConnections;
  /** Leases a prefix from the vl3-ipam server at `url`, asking for `previous` first. */
  leasePrefix: (url: string, previous: string | undefined) => PrefixSource;
  /** vL3 endpoints' records (by endpoint name). */
  vl3Records: Records<Vl3Record>;
  /** The MTU of this host's WireGuard vWires to other hosts; undefined without an underlay. */
  meshMtu: () => number | undefined;
  /**
   * Asks the client of a connection this endpoint serves to Request it again (a monitor event
   * with state REFRESH_REQUESTED on the agent's hub). conn: as the endpoint chain sees it.
   * Without it, nothing is pushed.
   */
  requestRefresh?: (conn: Connection) => void;
  /**
   * Calls cb with each connection the agent's server chain answers (as its monitor hub
   * stores it); returns the function that stops it.
   */
  connectionUpdates?: (cb: (conn: Connection) => void) => () => void;
  /**
   * The agent's server chain as a client of the endpoint named, for an endpoint that requests
   * services itself (a passthrough's next element). Called at each request (the server chain
   * is made after the endpoints are hosted).
   */
  next?: (endpoint: string) => NetworkServiceClient;
}

export interface EndpointKindParts {
  /** The kind's elements of the endpoint chain, in order. */
  elements: NetworkServiceServer[];
  /** Connections the endpoint serves now (for status). */
  connectionCount(): number;
  /** Frees what a reservation record of a previous run holds, by its key within this endpoint. */
  release(key: string): void;
  /** Prepares what the endpoint needs before it is registered (namespaces, leases). */
  start?(): Promise<void>;
  /** Called after each (re-)registration, with the registration as stored. */
  registered?(registration: NetworkServiceEndpoint): void;
  /** Stops the endpoint; with cleanup, removes what it made (peer connections, namespaces). */
  stop?(opts: { cleanup: boolean }): Promise<void>;
  /** What `status` shows of the kind. */
  status?(): Record<string, unknown>;
}

export type EndpointKind = (cfg: EndpointConfig, env: EndpointKindEnv) => EndpointKindParts;
