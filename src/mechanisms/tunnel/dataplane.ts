/**
 * What a REMOTE mechanism (WIREGUARD, VXLAN) must provide to the shared tunnel elements
 * (client.ts, server.ts). The elements own the connection bookkeeping (one session per
 * connection id, kept across refreshes, undone on failure); a dataplane owns the values and
 * the device.
 *
 * Life of one end, on either host:
 *   allocate (local values: keys, port, VNI) → advertise (own `src_*` or `dst_*` parameters)
 *   → peerOf (the other end's parameters, validated) → create (the device, in its final
 *   namespace under its final name, configured, addresses set) → update on refresh
 *   → remove and release on close. prepare and create may change the local values in place
 *   (a WireGuard listen port found taken is replaced); the serving end advertises them again
 *   in its answer.
 * Across an agent restart (optional, with records): persist after create and each refresh →
 *   adopt (the restarted agent takes the end back on the connection's next Request) → forget
 *   on close. Ends nobody adopts are reaped by the dataplane's records at their expiry.
 */
import type { Mechanism } from '../../api';
import type { SideConfig } from '../kernel/vwire';
import type { End } from './params';

export interface DeviceTarget {
  /** Namespace file path. */
  netns: string;
  ifname: string;
}

export interface CreateArgs<L, P> {
  local: L;
  peer: P;
  target: DeviceTarget;
  mtu: number | undefined;
  /** Addresses and routes of this end, from the connection's IP context. */
  side: SideConfig;
  /** What prepare() made for this end, if it ran. */
  prepared?: unknown;
}

export interface PrepareArgs<L, P> {
  local: L;
  /** Known to the serving end (from the request), not to the requesting one. */
  peer?: P;
  /** Known to the requesting end (the local client's KERNEL request), not to the serving one. */
  target?: DeviceTarget;
  mtu: number;
}

export interface TunnelDataplane<L, P, D> {
  /** Mechanism type, e.g. 'WIREGUARD'. */
  readonly type: string;
  /** The connection payload this mechanism carries ('IP' or 'ETHERNET'). */
  readonly payload: string;
  /** Encapsulation overhead subtracted from the underlay MTU. */
  readonly overhead: { v4: number; v6: number };
  /**
   * Values of a new end. `offered` is the mechanism as the peer sent it (the server gets the
   * client's; the client gets undefined). Throws if nothing is free (POOL_EXHAUSTED).
   */
  allocate(end: End, offered: Mechanism | undefined): Promise<L>;
  release(local: L): void;
  /** This end's parameters (`${end}_ip`, `${end}_port`, ...), without MTU. */
  advertise(local: L, end: End): Record<string, string>;
  /** The other end's parameters, validated (INVALID_ARGUMENT naming the key). */
  peerOf(params: Record<string, string>, end: End): P;
  /**
   * Optional head start, run by the tunnel elements while the request travels on: makes what
   * can be made before the answer (e.g. a WireGuard device with its key and port, placed at
   * the target when known). create() finishes it; discard() removes one that is not used.
   */
  prepare?(args: PrepareArgs<L, P>): Promise<unknown>;
  discard?(prepared: unknown): Promise<void>;
  /** Makes the device (finishing `prepared` when given); all-or-nothing. */
  create(args: CreateArgs<L, P>): Promise<D>;
  /**
   * A refresh: brings the device in line with the (possibly changed) peer, and with `mtu` when
   * given and different from the device's (the answer lowered the connection's MTU).
   */
  update(device: D, local: L, peer: P, mtu?: number): Promise<void>;
  /** Removes the device; a device already gone is not an error. */
  remove(device: D): Promise<void>;
  /**
   * The end of connection `id` a previous run of the agent left, taken back (values reserved,
   * device watched again), or undefined if there is none or it cannot be taken back (then it
   * is removed). Never throws.
   */
  adopt?(id: string): Promise<{ local: L; device: D } | undefined>;
  /** Records the end of connection `id` (after create and each successful refresh). */
  persist?(id: string, local: L, device: D, expires: number): void;
  /** Drops the record of connection `id` (its end was removed). */
  forget?(id: string): void;
  /** Releases what the dataplane keeps besides connections' devices (e.g. spare devices). */
  close?(): Promise<void>;
  /** For status output. */
  describe(device: D): Record<string, unknown>;
}
