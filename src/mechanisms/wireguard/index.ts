// SPDX-License-Identifier: Apache-2.0
/**
 * WireGuard dataplane: keys, UAPI client, per-connection devices (wireguard-go
 * supervised process or kernel WireGuard), UDP listen-port allocation.
 * See device.ts for the lifecycle contract.
 */
export * from './keys';
export * from './uapi';
export * from './ports';
export * from './names';
export {
  WG_ALLOWED_IPS,
  WG_PERSISTENT_KEEPALIVE,
  isListenPortTaken,
  liveWireguardDevices,
  type MoveOptions,
  type WireguardConfig,
  type WireguardDevice,
  type WireguardDeviceInfo,
  type WireguardPeerConfig,
  type WireguardSnapshot,
  type WireguardState,
} from './device';
export { WireguardGo, type WireguardGoOptions } from './wireguard-go';
export { KernelWireguard, kernelWireguardSupported } from './kernel';
export { isWireguardGo, reapWireguard } from './leftovers';
