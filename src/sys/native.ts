// SPDX-License-Identifier: Apache-2.0
/**
 * The only loader of native/build/Release/nsm_native.node.
 *
 * The addon is located by walking up from this file's directory until a
 * `native/build/Release/nsm_native.node` exists, so the same code works from
 * `src/sys` (vitest runs the TS directly) and `dist/sys` (tsc output). The
 * environment variable NSM_NATIVE_ADDON overrides the search (packaging).
 * Loading is lazy: importing src/sys never fails, the first call that needs
 * the addon throws a SysError ENOENT explaining how to build it.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { NsmNative } from '../../native/index';
import { SysError } from './errors';

export type { NsmNative, TunFlags, TunHandle } from '../../native/index';

const ADDON = join('native', 'build', 'Release', 'nsm_native.node');

/** Absolute path of the addon, or undefined if not built. */
export function findAddon(start: string = __dirname): string | undefined {
  const override = process.env['NSM_NATIVE_ADDON'];
  if (override) return override;
  for (let dir = start; ; dir = dirname(dir)) {
    const candidate = join(dir, ADDON);
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

let loaded: NsmNative | undefined;

/** The addon's typed surface; loads it on first use. */
export function native(): NsmNative {
  if (loaded === undefined) {
    const file = findAddon();
    if (file === undefined) {
      throw new SysError('ENOENT', 'dlopen', {
        path: ADDON,
        detail: 'native addon not built; run `npm run build:native`',
      });
    }
    const addon = require(file) as Partial<NsmNative>;
    if (typeof addon.withNetns !== 'function') {
      // Non-Linux builds export nothing (native/src/unsupported.cc).
      throw new SysError('ENOSYS', 'dlopen', { path: file, detail: 'nsm_native supports Linux only' });
    }
    loaded = addon as NsmNative;
  }
  return loaded;
}
