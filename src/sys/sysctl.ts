// SPDX-License-Identifier: Apache-2.0
/**
 * sysctls inside a namespace. /proc/sys/net/* resolves to the namespace of
 * the thread that *opens* the file, so the open+write (or read) happens
 * synchronously inside withNetns. Non-net keys are global: writing them
 * through any namespace changes the host.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { invalidArgument, rethrow } from './errors';
import { Netns, withNetns } from './netns';

/**
 * 'net.ipv4.ping_group_range' -> '/proc/sys/net/ipv4/ping_group_range'.
 * Keys containing '/' are path form ('net/ipv4/conf/eth0.100/forwarding' or
 * '/proc/sys/...'): use it when a component (an ifname) contains dots.
 */
export function sysctlPath(key: string): string {
  const rel = key.includes('/') ? key.replace(/^\/proc\/sys\//, '') : key.replace(/\./g, '/');
  const parts = rel.split('/');
  if (rel.startsWith('/') || parts.some((p) => p === '' || p === '.' || p === '..')) {
    throw invalidArgument('sysctl', key, 'not a sysctl key');
  }
  return `/proc/sys/${rel}`;
}

/** Writes `value` to sysctl `key` as seen from `ns`. */
export function setSysctl(ns: Netns, key: string, value: string): void {
  const path = sysctlPath(key);
  withNetns(ns, () => {
    try {
      writeFileSync(path, value);
    } catch (err) {
      rethrow(err, { path });
    }
  });
}

/** Reads sysctl `key` as seen from `ns` (trailing newline removed). */
export function getSysctl(ns: Netns, key: string): string {
  const path = sysctlPath(key);
  return withNetns(ns, () => {
    try {
      return readFileSync(path, 'utf8').replace(/\n$/, '');
    } catch (err) {
      rethrow(err, { path });
    }
  });
}
