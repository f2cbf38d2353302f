// SPDX-License-Identifier: Apache-2.0
/**
 * WireGuard dataplane: keys, UAPI client, per-connection devices (wireguard-go
 * supervised child or kernel WireGuard), UDP listen-port allocation.
 * See device.ts for the lifecycle contract.
 */
export * from './keys';
export * from './uapi';
export * from './ports';
export * from './device';
