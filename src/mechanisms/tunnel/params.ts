/**
 * Parameters shared by the REMOTE mechanisms (WIREGUARD, VXLAN): the underlay this host
 * tunnels from, the `src_*` / `dst_*` keys with NSM's formats (IP text, decimal ports), MTU
 * arithmetic, and where the local end of a client's tunnel goes (LOCAL_SIDE).
 * Every malformed value from a peer is INVALID_ARGUMENT naming the key and the value.
 */
import { isIP } from 'node:net';
import type { Connection } from '../../api';
import { Key } from '../../core/ctx';
import { AgentError } from '../../core/errors';

/** The host side of all tunnels: the tunnel IP and the MTU of its interface. */
export interface Underlay {
  ip: string;
  family: 4 | 6;
  mtu: number;
}

/** Which end of the tunnel a parameter set describes: the requester (`src`) or the server (`dst`). */
export type End = 'src' | 'dst';

export const other = (end: End): End => (end === 'src' ? 'dst' : 'src');

/**
 * Where the local end of a client's tunnel must land: the namespace file and interface name
 * the local client asked for with its KERNEL mechanism. Set by the kernel mechanism server
 * before the request travels on to a remote agent.
 */
export interface LocalTarget {
  netns: string;
  ifname: string;
  /** The bridge the end joins as a port (a passthrough endpoint's side), if any. */
  bridge?: string;
}
export const LOCAL_TARGET = new Key<LocalTarget>('tunnel.local-target');

type Params = Record<string, string> | null | undefined;

export function paramIp(params: Params, key: string): string {
  const v = params?.[key] ?? '';
  if (!isIP(v)) throw new AgentError('INVALID_ARGUMENT', `mechanism parameter ${key} must be an IP address, got ${JSON.stringify(v)}`);
  return v;
}

export function paramPort(params: Params, key: string): number {
  const v = params?.[key] ?? '';
  const n = /^\d{1,5}$/.test(v) ? Number(v) : NaN;
  if (!(n >= 1 && n <= 65535)) throw new AgentError('INVALID_ARGUMENT', `mechanism parameter ${key} must be a UDP port, got ${JSON.stringify(v)}`);
  return n;
}

/** The MTU a peer offered; 0 when absent. */
export function paramMtu(params: Params): number {
  const v = params?.['MTU'];
  if (v === undefined || v === '') return 0;
  const n = /^\d{1,6}$/.test(v) ? Number(v) : NaN;
  if (!(n >= 68 && n <= 65535)) throw new AgentError('INVALID_ARGUMENT', `mechanism parameter MTU must be 68..65535, got ${JSON.stringify(v)}`);
  return n;
}

/** `ip:port`, with brackets for IPv6. */
export function hostPort(ip: string, port: number): string {
  return isIP(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** The tunnel's inner MTU: the underlay's minus the encapsulation overhead of its family. */
export function innerMtu(underlay: Underlay, overhead: { v4: number; v6: number }): number {
  return underlay.mtu - (underlay.family === 6 ? overhead.v6 : overhead.v4);
}

/** NSM's server-side rule: the context MTU is lowered to the mechanism MTU (or set when 0). */
export function clampContextMtu(conn: Connection, mtu: number): void {
  const ctx = (conn.context ??= {});
  if (!ctx.MTU || ctx.MTU > mtu) ctx.MTU = mtu;
}

/** The smaller positive value; undefined when neither is. */
export function minMtu(...values: (number | null | undefined)[]): number | undefined {
  const ok = values.filter((v): v is number => typeof v === 'number' && v > 0);
  return ok.length ? Math.min(...ok) : undefined;
}
