// SPDX-License-Identifier: Apache-2.0
/**
 * Small files replaced whole, in batches (the agent's state records, src/agent/state/store.ts).
 *
 * A write goes to `<path>.<pid>.tmp`, which is then renamed over `path`: a reader sees the old
 * file or the new one, never part of one. A batch runs in order on one libuv pool thread, as one
 * job with one callback (native fileOpsAsync), where node:fs would take four pool round trips
 * per file, each with its callback and promise on the event loop. Nothing is fsynced.
 */
import { SysError, errnoCode, rethrow } from './errors';
import { native } from './native';

/** Write `data` over `path` (created with `mode`, default 0600), or, without data, remove `path`. */
export interface FileOp {
  path: string;
  data?: string | Buffer;
  mode?: number;
}

/** The temporary file a write of `path` goes through (left only by a process killed mid-write). */
export function tempPathOf(path: string): string {
  return `${path}.${process.pid}.tmp`;
}

/**
 * Runs `ops` in order; resolves with each one's outcome: undefined when done (a removal of a
 * missing file is done), else a SysError (syscall 'write' for writes, 'unlink' for removals).
 * One failure does not stop the others. Rejects only if the addon cannot run the batch.
 */
export async function applyFileOps(ops: readonly FileOp[]): Promise<(SysError | undefined)[]> {
  if (ops.length === 0) return [];
  let errnos: number[];
  try {
    errnos = await native().fileOpsAsync(
      ops.map((op) =>
        op.data === undefined
          ? { path: op.path }
          : { path: op.path, tmp: tempPathOf(op.path), data: typeof op.data === 'string' ? Buffer.from(op.data) : op.data, mode: op.mode },
      ),
    );
  } catch (err) {
    rethrow(err, { syscall: 'fileOps' });
  }
  return ops.map((op, i) => {
    const e = errnos[i] ?? 0;
    return e === 0 ? undefined : new SysError(errnoCode(e), op.data === undefined ? 'unlink' : 'write', { path: op.path });
  });
}
