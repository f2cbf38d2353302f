// SPDX-License-Identifier: Apache-2.0
/**
 * Other processes, as /proc shows them (by PID only: the agent never looks them up by name).
 */
import { readFileSync } from 'node:fs';

/**
 * The argv of `pid` if it is alive, undefined if it is gone or a zombie waiting to be reaped
 * (a killed orphan stays one until init reaps it: it holds nothing and serves nothing).
 */
export function liveArgv(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return undefined;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return undefined;
  }
}
