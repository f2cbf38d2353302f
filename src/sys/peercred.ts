// SPDX-License-Identifier: Apache-2.0
/** Who is on the other end of a local (unix) socket. */
import type { Socket } from 'node:net';
import { rethrow } from './errors';
import { native } from './native';

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/**
 * SO_PEERCRED of an accepted unix-socket connection. Node does not expose the fd of a
 * net.Socket officially; its handle carries it on Unix, and this throws EBADF if it is absent.
 */
export function peerCredentials(socket: Socket): PeerCredentials {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  try {
    if (typeof fd !== 'number' || fd < 0) throw Object.assign(new Error('EBADF: bad file descriptor, getsockopt'), { code: 'EBADF', errno: -9, syscall: 'getsockopt' });
    return native().peerCredentials(fd);
  } catch (err) {
    rethrow(err, { syscall: 'getsockopt' });
  }
}
