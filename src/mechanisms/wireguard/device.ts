// SPDX-License-Identifier: Apache-2.0
/**
 * One WireGuard device per connection, behind one interface with two
 * implementations:
 *
 *  - {@link WireguardGo} (wireguard-go.ts): a supervised `wireguard-go` process
 *    (userspace, TUN). Used when the kernel has no WireGuard.
 *  - {@link KernelWireguard} (kernel.ts): a kernel `wireguard` link configured
 *    over generic netlink. Used only when kernelWireguardSupported() says so.
 *
 * Lifecycle for one connection (both implementations):
 *   1. create(tempName)  in the HOST namespace under a globally unique
 *      temporary name (tempWireguardName: 'nsmwg' + 10 hex). The UDP
 *      socket is opened here and stays here for the device's whole life.
 *   2. configure(cfg)    private key, listen port, exactly one peer with
 *      endpoint, AllowedIPs 0.0.0.0/0 and ::/0, PersistentKeepalive 10 s
 *      (as NSM's wireguard mechanism sets them). May be called again
 *      (refresh) with the same keys.
 *   3. move(ns, name, {mtu, up})  sets the MTU (before the move), moves the
 *      link into `ns` renaming it to `name`, sets it up. May be called again:
 *      to another namespace, or to the same one (a rename in place, no move:
 *      a device made ahead can wait, down, where it will likely be needed;
 *      moving a link between namespaces costs the kernel an RCU barrier).
 *   4. delete()          removes link, process and UAPI socket. Idempotent.
 *
 * Events (both implementations emit only what applies):
 *   'spawned'    ({ pid })                     a wireguard-go process started
 *   'exited'     ({ pid, code, signal, expected })
 *   'restarted'  ({ pid, ms, restarts })       device is back and configured
 *   'failed'     (AgentError)                  gave up restarting
 *   'deleted'    ()
 *
 * Errors are AgentErrors: INVALID_INTERFACE_NAME, INVALID_ARGUMENT (keys,
 * ports, endpoint), ALREADY_EXISTS (name taken in the host ns / socket in
 * use / target name taken in the target ns), FAILED_PRECONDITION (wrong
 * lifecycle order), DATAPLANE (process or kernel failure),
 * UNSUPPORTED_MECHANISM (kernel WireGuard missing).
 */
import type { EventEmitter } from 'node:events';
import { AgentError } from '../../core/errors';
import { SysError, openNetns, type Netns } from '../../sys';
import { UAPI_PORT_IN_USE, UapiError } from './uapi';

/** As NSM's wireguard mechanism sets it. */
export const WG_PERSISTENT_KEEPALIVE = 10;
export const WG_ALLOWED_IPS: readonly string[] = ['0.0.0.0/0', '::/0'];

export interface WireguardPeerConfig {
  /** base64 public key of the other side. */
  publicKey: string;
  /** 'ip:port' or '[ipv6]:port' of the other side (from the mechanism). */
  endpoint: string;
}

export interface WireguardConfig {
  /** base64 private key of this side (fresh per connection, kept across refreshes). */
  privateKey: string;
  listenPort: number;
  /** Absent: no peer yet (a device made ahead of the answer that names the peer). */
  peer?: WireguardPeerConfig;
  /** Default {@link WG_PERSISTENT_KEEPALIVE}. */
  persistentKeepalive?: number;
  /** Default {@link WG_ALLOWED_IPS}. */
  allowedIps?: string[];
}

export interface MoveOptions {
  /** Set before the move; e.g. underlay MTU − the WireGuard overhead. */
  mtu?: number;
  /** Set the link up after the move (default true). */
  up?: boolean;
}

export type WireguardState = 'new' | 'running' | 'restarting' | 'failed' | 'deleted';

export interface WireguardDeviceInfo {
  impl: 'wireguard-go' | 'kernel';
  state: WireguardState;
  /** Temporary host-ns name; for wireguard-go also the UAPI socket name that `wg show` prints. */
  hostName: string;
  /** Current link name (hostName until moved). */
  name: string;
  /** Path of the namespace the link was moved to (undefined: host ns). */
  netns?: string;
  /** ifindex in the current namespace, if known. */
  ifindex?: number;
  /** wireguard-go only. */
  pid?: number;
  uapiSocket?: string;
  restarts: number;
  listenPort?: number;
  peerPublicKey?: string;
  mtu?: number;
}

/**
 * What a restarted agent needs to take a device back (adopt) or to remove it (reapWireguard):
 * names, process, configuration and placement. Holds the private key: stored only in the
 * agent's state directory (mode 0700).
 */
export interface WireguardSnapshot {
  impl: 'wireguard-go' | 'kernel';
  hostName: string;
  /** wireguard-go's PID. */
  pid?: number;
  cfg?: WireguardConfig;
  /** Namespace file the link was moved to (undefined: still in the host namespace). */
  netns?: string;
  /** The link's name there. */
  name: string;
  move?: Required<MoveOptions>;
}

export interface WireguardDevice extends EventEmitter {
  /** Creates the device in the host ns under `name` (default: a fresh temp name). */
  create(name?: string): Promise<void>;
  configure(cfg: WireguardConfig): Promise<void>;
  move(target: Netns, newName: string, options?: MoveOptions): Promise<void>;
  /** Idempotent; never throws for an already-gone device. */
  delete(): Promise<void>;
  info(): WireguardDeviceInfo;
  snapshot(): WireguardSnapshot;
}

/** A kernel or process failure as an AgentError naming what failed (`context`). */
export function toAgentError(err: unknown, context: string): AgentError {
  if (err instanceof SysError && err.code === 'EEXIST') return new AgentError('ALREADY_EXISTS', `${context}: ${err.message}`, { cause: err });
  if (err instanceof SysError && err.code === 'EINVAL' && err.syscall === 'RTM_NEWLINK') {
    return new AgentError('INVALID_INTERFACE_NAME', `${context}: ${err.message}`, { cause: err });
  }
  return err instanceof AgentError ? err : AgentError.wrap(err, context, 'DATAPLANE');
}

/**
 * True if configure() failed because the listen port it set is bound by another socket
 * (wireguard-go: UAPI errno -98; kernel: EADDRINUSE from generic netlink). The device is
 * left without a UDP socket and takes another port in a new configure().
 */
export function isListenPortTaken(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof UapiError) return e.errno === UAPI_PORT_IN_USE;
    if (e instanceof SysError) return e.code === 'EADDRINUSE';
  }
  return false;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A private handle on the same namespace (the caller may close theirs). */
export function dupNetns(ns: Netns): Netns {
  return openNetns(`/proc/self/fd/${ns.fd}`);
}

/** Host-ns temp names in use by this process (wireguard-go and kernel). */
export const liveNames = new Map<string, WireguardDevice>();

/** Every device of this process that is not deleted (for `wg show` mapping, shutdown). */
export function liveWireguardDevices(): WireguardDeviceInfo[] {
  return [...liveNames.values()].map((d) => d.info());
}
