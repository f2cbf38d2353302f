// SPDX-License-Identifier: Apache-2.0
/**
 * Names and validation of WireGuard devices: the temporary host-namespace name every device
 * starts under, the interface names both the kernel and wireguard-go accept, the tunnel MTU,
 * and the checks a configuration passes before it reaches a device.
 */
import { randomBytes } from 'node:crypto';
import { isIP, isIPv4 } from 'node:net';
import { AgentError } from '../../core/errors';
import { validateIfName } from '../../sys';
import { validatePrivateKey, validatePublicKey } from './keys';

export const TEMP_NAME_PREFIX = 'nsmwg';
/** WireGuard overhead to subtract from the underlay MTU, as NSM's wireguard mechanism does. */
export const WG_OVERHEAD_V4 = 60;
export const WG_OVERHEAD_V6 = 80;

/** 'nsmwg' + 10 random hex chars (15 chars = IFNAMSIZ-1): globally unique in practice. */
export function tempWireguardName(): string {
  return TEMP_NAME_PREFIX + randomBytes(5).toString('hex');
}

/** Tunnel MTU for an underlay MTU (−60 for an IPv4, −80 for an IPv6 underlay). */
export function wireguardMtu(underlayMtu: number, underlayFamily: 4 | 6): number {
  return underlayMtu - (underlayFamily === 4 ? WG_OVERHEAD_V4 : WG_OVERHEAD_V6);
}

/**
 * Interface names acceptable to both the kernel and wireguard-go's argv:
 * the kernel rules, plus no leading '-' (would look like a flag) and only
 * [A-Za-z0-9_.-] (it becomes a file name under /var/run/wireguard).
 */
export function validateWireguardName(name: string): void {
  try {
    validateIfName(name);
  } catch (err) {
    throw new AgentError('INVALID_INTERFACE_NAME', err instanceof Error ? err.message : String(err));
  }
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(name)) {
    throw new AgentError('INVALID_INTERFACE_NAME', `interface name '${name}' must match [A-Za-z0-9_][A-Za-z0-9_.-]*`);
  }
}

/** What {@link validateConfig} checks of a device configuration. */
export interface ConfigToValidate {
  privateKey: string;
  listenPort: number;
  peer?: { publicKey: string };
}

/** Validates a configuration; throws INVALID_ARGUMENT. */
export function validateConfig(cfg: ConfigToValidate): void {
  validatePrivateKey(cfg.privateKey);
  if (cfg.peer) validatePublicKey(cfg.peer.publicKey);
  if (!Number.isInteger(cfg.listenPort) || cfg.listenPort < 1 || cfg.listenPort > 65535) {
    throw new AgentError('INVALID_ARGUMENT', `bad WireGuard listen port ${cfg.listenPort}`);
  }
}

/**
 * Splits a peer endpoint, 'ip:port' or '[ipv6]:port' (no zone), into address and port;
 * INVALID_ARGUMENT if malformed.
 */
export function parseEndpoint(endpoint: string): { ip: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([\d.]+)):(\d+)$/.exec(endpoint);
  const ip = m?.[1] ?? m?.[2] ?? '';
  const port = Number(m?.[3]);
  if (m === null || ip.includes('%') || !(m[2] !== undefined ? isIPv4(ip) : isIP(ip) !== 0) || port > 65535) {
    throw new AgentError('INVALID_ARGUMENT', `bad WireGuard endpoint '${endpoint}'`);
  }
  return { ip, port };
}
