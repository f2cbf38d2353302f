// SPDX-License-Identifier: Apache-2.0
/**
 * Errors of the kernel-access layer.
 *
 * Every failure that leaves src/sys is a {@link SysError}: an `Error` shaped
 * like Node's own syscall errors (`code: 'ENOENT'`, negative `errno`,
 * `syscall`, optional `path`), whether it came from the native addon, from
 * Node's fs, from a netlink ERROR reply or from argument validation here.
 * Netlink failures use the request type as `syscall` (e.g. 'RTM_NEWLINK').
 */
import { getSystemErrorMap } from 'node:util';

/** A syscall-level failure with a stable errno `code`. */
export class SysError extends Error {
  /** errno name, e.g. 'EEXIST'. Stable; match on this, not on `message`. */
  readonly code: string;
  /** Negative errno number (as in Node's fs errors), or 0 if unknown. */
  readonly errno: number;
  /** The syscall or netlink request that failed: 'setns', 'open', 'RTM_NEWLINK'. */
  readonly syscall: string;
  /** The file or object the call was about, if any (path, ifname, address). */
  readonly path?: string;

  constructor(code: string, syscall: string, options: { path?: string; detail?: string; cause?: unknown } = {}) {
    const info = errnoInfo(code);
    let message = `${code}: ${info.description}, ${syscall}`;
    if (options.path !== undefined) message += ` '${options.path}'`;
    if (options.detail !== undefined) message += `: ${options.detail}`;
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SysError';
    this.code = code;
    this.errno = info.errno;
    this.syscall = syscall;
    if (options.path !== undefined) this.path = options.path;
  }
}

interface ErrnoInfo {
  errno: number;
  description: string;
}

let byCode: Map<string, ErrnoInfo> | undefined;
let byErrno: Map<number, string> | undefined;

function tables(): { byCode: Map<string, ErrnoInfo>; byErrno: Map<number, string> } {
  if (byCode === undefined || byErrno === undefined) {
    byCode = new Map();
    byErrno = new Map();
    // Node's own errno table (libuv names and texts), keyed by negative errno.
    for (const [errno, [code, description]] of getSystemErrorMap()) {
      byCode.set(code, { errno, description });
      byErrno.set(errno, code);
    }
  }
  return { byCode, byErrno };
}

function errnoInfo(code: string): ErrnoInfo {
  return tables().byCode.get(code) ?? { errno: 0, description: 'unknown error' };
}

/** errno name for a (positive or negative) errno number, e.g. 17 -> 'EEXIST'. */
export function errnoCode(errno: number): string {
  return tables().byErrno.get(-Math.abs(errno)) ?? `ERRNO_${Math.abs(errno)}`;
}

/** An EINVAL SysError for arguments rejected before reaching the kernel. */
export function invalidArgument(syscall: string, path: string | undefined, detail: string): SysError {
  return new SysError('EINVAL', syscall, { path, detail });
}

/**
 * Converts anything thrown by the addon, Node's fs or the netlink package into
 * a SysError. `context` fills in what the thrower did not know (the addon's
 * setns only sees an fd, so the caller supplies the namespace path).
 * Non-errno errors (TypeError, bugs) are returned unchanged.
 */
export function toSysError(err: unknown, context: { syscall?: string; path?: string; detail?: string } = {}): unknown {
  if (err instanceof SysError) return err;
  if (!(err instanceof Error)) return err;
  const e = err as Error & { code?: unknown; syscall?: unknown; path?: unknown };
  if (typeof e.code !== 'string' || !/^E[A-Z0-9]+$/.test(e.code)) return err;
  const syscall = typeof e.syscall === 'string' ? e.syscall : context.syscall ?? 'unknown';
  const path = typeof e.path === 'string' ? e.path : context.path;
  return new SysError(e.code, syscall, { path, detail: context.detail, cause: err });
}

/** `throw toSysError(err, context)` with the right type for control flow. */
export function rethrow(err: unknown, context: { syscall?: string; path?: string; detail?: string } = {}): never {
  throw toSysError(err, context);
}
