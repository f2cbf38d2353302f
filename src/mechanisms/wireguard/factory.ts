// SPDX-License-Identifier: Apache-2.0
/**
 * Where the WireGuard dataplane gets its devices: made new, taken back after an agent restart,
 * or reaped. The seam between the dataplane adapter (and its spare pool) and the devices: the
 * host's are supervised wireguard-go processes or kernel WireGuard links; unit tests pass
 * in-memory fakes.
 */
import type { WireguardDevice, WireguardSnapshot } from './device';
import { KernelWireguard } from './kernel';
import { reapWireguard } from './leftovers';
import { WireguardGo, type WireguardGoOptions } from './wireguard-go';

/** What a restart of a device's process must put back (addresses and routes). */
export type RestartHooks = Pick<WireguardGoOptions, 'afterRestart'>;

/** Where the dataplane gets its devices. */
export interface DeviceFactory {
  /** A new device, not created yet. */
  make(hooks: RestartHooks): WireguardDevice;
  /** A device a previous run of the agent left, taken back; throws if it cannot be. */
  adopt(snap: WireguardSnapshot, hooks: RestartHooks): Promise<WireguardDevice>;
  /** Removes what a snapshot describes; never throws for what is already gone. */
  reap(snap: WireguardSnapshot): Promise<void>;
}

/** The devices of this host: kernel WireGuard when `kernel`, else supervised wireguard-go. */
export function hostDevices(options: { kernel?: boolean; wireguardGo?: Omit<WireguardGoOptions, 'afterRestart'> }): DeviceFactory {
  return {
    make: (hooks) => (options.kernel ? new KernelWireguard() : new WireguardGo({ ...options.wireguardGo, ...hooks })),
    adopt: (snap, hooks) => (snap.impl === 'kernel' ? KernelWireguard.adopt(snap) : WireguardGo.adopt(snap, { ...options.wireguardGo, ...hooks })),
    reap: reapWireguard,
  };
}
