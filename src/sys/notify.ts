// SPDX-License-Identifier: Apache-2.0
/** systemd readiness notification (Type=notify). */
import { rethrow } from './errors';
import { native } from './native';

/**
 * Sends `state` (e.g. 'READY=1', 'STOPPING=1', 'STATUS=...') to
 * $NOTIFY_SOCKET. Returns false when not started by systemd with a notify
 * socket; throws SysError if the socket exists but the send fails.
 */
export function sdNotify(state: string): boolean {
  try {
    return native().sdNotify(state);
  } catch (err) {
    rethrow(err, { syscall: 'sendto' });
  }
}

/** Sends one datagram to the unix datagram socket at `path`; throws SysError (ENOENT, EMSGSIZE, ...). */
export function sendDatagram(path: string, data: Buffer): void {
  try {
    native().sendDatagram(path, data);
  } catch (err) {
    rethrow(err, { syscall: 'sendto', path });
  }
}
