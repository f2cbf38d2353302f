// SPDX-License-Identifier: Apache-2.0
/**
 * Network namespace handles.
 *
 * A {@link Netns} is an open fd on a namespace file (nsfs). While it is open
 * the namespace stays alive even if its name is deleted. Handles are cheap;
 * open one per use or keep one per connection, and close it when done
 * (closing also releases the cached netlink socket, see rtnl.ts).
 */
import { closeSync, fstatSync, openSync, readdirSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SysError, invalidArgument, rethrow, toSysError } from './errors';
import { native } from './native';

/** Where named namespaces live, as with iproute2. */
export const NETNS_RUN_DIR = '/run/netns';

export interface Netns {
  /** The path the handle was opened from (informational). */
  readonly path: string;
  /** Open read-only fd on the namespace file; valid until close(). */
  readonly fd: number;
  /** nsfs inode: identifies the namespace (with `dev`) while it exists. */
  readonly inode: number;
  readonly dev: number;
  readonly closed: boolean;
  /** Closes the fd and runs the onClose listeners. Idempotent. */
  close(): void;
  /** Runs `listener` once when the handle closes (used to drop cached sockets). */
  onClose(listener: () => void): void;
}

class NetnsHandle implements Netns {
  private listeners: Array<() => void> = [];
  private isClosed = false;

  constructor(
    readonly path: string,
    readonly fd: number,
    readonly inode: number,
    readonly dev: number,
    private readonly owned: boolean,
  ) {}

  get closed(): boolean {
    return this.isClosed;
  }

  close(): void {
    if (!this.owned || this.isClosed) return;
    this.isClosed = true;
    const listeners = this.listeners;
    this.listeners = [];
    for (const listener of listeners) listener();
    closeSync(this.fd);
  }

  onClose(listener: () => void): void {
    if (this.isClosed) listener();
    else this.listeners.push(listener);
  }
}

/**
 * Normalizes how callers name a namespace:
 * 'nsc' -> '/run/netns/nsc'; absolute paths ('/proc/1/ns/net') are kept;
 * 'file:///run/netns/x' -> '/run/netns/x'. Throws EINVAL for anything else
 * (relative paths, '.', '..', empty).
 */
export function netnsPath(nameOrPathOrUrl: string): string {
  if (nameOrPathOrUrl.startsWith('file:')) {
    try {
      return fileURLToPath(nameOrPathOrUrl);
    } catch (err) {
      throw invalidArgument('netns', nameOrPathOrUrl, `bad file URL (${(err as Error).message})`);
    }
  }
  if (isAbsolute(nameOrPathOrUrl)) return nameOrPathOrUrl;
  validateName(nameOrPathOrUrl);
  return `${NETNS_RUN_DIR}/${nameOrPathOrUrl}`;
}

function validateName(name: string): void {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw invalidArgument('netns', name, 'a namespace name must be a plain file name under /run/netns');
  }
}

/**
 * Opens a namespace by name, path or file URL. Fails with SysError ENOENT
 * ("ENOENT: no such file or directory, open netns '/run/netns/x'") if it does
 * not exist, and EINVAL if the file is not a namespace (e.g. an unmounted
 * leftover under /run/netns).
 */
export function openNetns(nameOrPath: string): Netns {
  const path = netnsPath(nameOrPath);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    const missing = (err as { code?: unknown }).code === 'ENOENT';
    rethrow(err, { path, detail: missing ? 'no such network namespace' : undefined });
  }
  try {
    const st = fstatSync(fd);
    if (st.dev !== hostNetns().dev) {
      throw invalidArgument('open', path, 'not a namespace file (nsfs); is the netns mounted?');
    }
    return new NetnsHandle(path, fd, st.ino, st.dev, true);
  } catch (err) {
    closeSync(fd);
    throw toSysError(err, { path });
  }
}

let host: Netns | undefined;

/**
 * The agent's own namespace: the one the process was in when the addon was
 * loaded, i.e. where outermost {@link withNetns} calls return to. It is a
 * shared singleton; close() on it does nothing.
 */
export function hostNetns(): Netns {
  if (host === undefined) {
    const fd = native().homeNetnsFd;
    const st = fstatSync(fd);
    host = new NetnsHandle('/proc/self/ns/net', fd, st.ino, st.dev, false);
  }
  return host;
}

/** True if both handles refer to the same namespace. */
export function sameNetns(a: Netns, b: Netns): boolean {
  return a.inode === b.inode && a.dev === b.dev;
}

/**
 * Runs `fn` synchronously with the calling thread switched into `ns`, and
 * switches back before returning or rethrowing (the process aborts if that
 * is impossible). Use it to open sockets or /proc/sys/net files inside a
 * namespace: they stay bound to it afterwards. `fn` must be synchronous:
 * anything it schedules (promises, timers, async fs) runs back in the host ns,
 * so returning a promise is rejected as a bug (after the switch back).
 * Nesting is allowed.
 */
export function withNetns<T>(ns: Netns, fn: () => T): T {
  if (ns.closed) throw new SysError('EBADF', 'setns', { path: ns.path, detail: 'netns handle is closed' });
  let result: T;
  try {
    result = native().withNetns(ns.fd, fn);
  } catch (err) {
    // Only the addon's own setns/open failures lack context; fn's errors pass unchanged.
    const e = err as { syscall?: unknown };
    if (e !== null && typeof e === 'object' && e.syscall === 'setns') rethrow(err, { path: ns.path });
    throw err;
  }
  if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
    throw new TypeError('withNetns: fn must be synchronous (it returned a promise)');
  }
  return result;
}

/**
 * Creates a named namespace like `ip netns add` (without ever switching the
 * JS thread) and returns an open handle. EEXIST if the name is taken.
 * Blocks the event loop for about 1 ms (kernel netns setup).
 */
export async function createNetns(name: string): Promise<Netns> {
  const path = netnsPath(name);
  try {
    native().createNetns(path);
  } catch (err) {
    rethrow(err, { path });
  }
  try {
    return openNetns(path);
  } catch (err) {
    native().deleteNetns(path);
    throw err;
  }
}

/**
 * Removes a named namespace like `ip netns del`: the name disappears at once;
 * the namespace (and its links) lives on while handles, sockets or processes
 * still reference it. ENOENT if there is no such name.
 */
export async function deleteNetns(name: string): Promise<void> {
  const path = netnsPath(name);
  try {
    native().deleteNetns(path);
  } catch (err) {
    rethrow(err, { path });
  }
}

/** Names under /run/netns (empty if the directory does not exist). */
export function listNetns(): string[] {
  try {
    return readdirSync(NETNS_RUN_DIR).sort();
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return [];
    rethrow(err, { path: NETNS_RUN_DIR });
  }
}
