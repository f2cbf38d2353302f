/** What the metrics exporter reads from the agent, and the events it is told about. */
import type { Connection, Mechanism } from '../../api';
import type { RegistryHealthView } from '../registry-health';
import type { InterfacesOf } from './traffic';

/** Why a heal started: data-plane liveness check, the monitor stream broke, the connection went down. */
export type HealCause = 'liveness' | 'monitor_break' | 'connection_down';

export interface Observer {
  /** A Request succeeded at this agent (this hop's connection) after `seconds`. */
  requested(conn: Connection, seconds: number): void;
  healStarted(cause: HealCause): void;
  healRecovered(cause: HealCause, reselected: boolean, seconds: number): void;
}

export interface MetricsSources {
  /** The server chain's connections (the monitor hub), to be read, not changed. */
  connections(): readonly Connection[];
  interfacesOf: InterfacesOf;
  tunnelOf(id: string): { mechanism?: Mechanism; device?: Record<string, unknown> };
  /** The SVID's NotAfter (ms since the epoch), undefined before the identity is loaded. */
  svidExpiresAt(): number | undefined;
  /** The earliest NotAfter (ms) of each trust bundle, by trust domain. */
  bundleExpiries(): [string, number][];
  /** A remote registry's reachability; undefined when embedded. */
  registryHealth(): (RegistryHealthView & { failures: number }) | undefined;
  /** Members of each vL3 endpoint hosted here, by endpoint name. */
  vl3Members(): [string, number][];
  /** Queries the agent's DNS servers handled, by server and response code (totals since start). */
  dnsAnswers(): { server: string; rcode: string; n: number }[];
  /** ms since the epoch. */
  now(): number;
}
