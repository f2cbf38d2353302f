// SPDX-License-Identifier: Apache-2.0
/** The process's own memory. */
import v8 from 'node:v8';
import { native } from './native';

export interface ReleaseOptions {
  /**
   * Drop the compiled code (bytecode and its feedback) of every function not running now, not
   * only of those V8 finds unused after several collections: for after work that ran once.
   * Functions called later are compiled again from their source, as on their first call.
   */
  compiledCode?: boolean;
}

/**
 * Gives back to the kernel what the process holds and no longer uses: the pages of a JS heap
 * compacted by a collection with memory reduction, the young generation shrunk to its
 * minimum, and the free pages of every malloc arena. Blocks while V8 collects (tens of
 * milliseconds for a heap of some megabytes): for a quiet moment, such as just after start.
 * Returns whether malloc had pages to give back.
 */
export function releaseMemory(opts: ReleaseOptions = {}): boolean {
  // V8's flag for flushing regardless of age, set for this collection only
  if (opts.compiledCode) v8.setFlagsFromString('--stress-flush-code');
  try {
    return native().releaseMemory();
  } finally {
    if (opts.compiledCode) v8.setFlagsFromString('--no-stress-flush-code');
  }
}
