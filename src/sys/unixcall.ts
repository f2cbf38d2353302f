// SPDX-License-Identifier: Apache-2.0
/**
 * One request-answer exchange on a unix stream socket, made synchronously by the native addon
 * (native/src/unixcall.cc): connect, send, read until the other side closes. For one-shot
 * commands, which would otherwise load node:net and run the event loop for a single call.
 * Failures are SysErrors: ENOENT or ECONNREFUSED (nobody listens), EACCES, ETIMEDOUT (the
 * deadline covers the whole exchange), EMSGSIZE (an answer over `maxBytes`).
 */
import { rethrow } from './errors';
import { native } from './native';

export function unixCall(path: string, request: Buffer, opts: { timeoutMs: number; maxBytes: number }): Buffer {
  try {
    return native().unixCall(path, request, opts.timeoutMs, opts.maxBytes);
  } catch (err) {
    rethrow(err, { path });
  }
}
