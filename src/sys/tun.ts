// SPDX-License-Identifier: Apache-2.0
/**
 * TUN/TAP devices. The addon returns the fd; JS does the I/O on it (for
 * example fs.read/fs.write or a stream). The device is created in `ns`, and
 * disappears when the last fd is closed (unless made persistent elsewhere).
 */
import { rethrow } from './errors';
import { validateIfName } from './link';
import { native, type TunFlags, type TunHandle } from './native';
import { Netns, withNetns } from './netns';

export type { TunFlags, TunHandle };

/**
 * Creates (or attaches to, for multi-queue) TUN/TAP `name` in `ns` (default:
 * the host ns) with IFF_NO_PI. `name` may be a pattern such as 'tun%d'; the
 * returned name is the real one. The caller owns and must close `fd`.
 */
export function openTun(name: string, flags: TunFlags = {}, ns?: Netns): TunHandle {
  if (name !== '') validateIfName(name, 'ioctl(TUNSETIFF)');
  const open = (): TunHandle => native().openTun(name, flags);
  try {
    return ns === undefined ? open() : withNetns(ns, open);
  } catch (err) {
    rethrow(err, { path: name });
  }
}
