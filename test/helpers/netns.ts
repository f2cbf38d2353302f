// SPDX-License-Identifier: Apache-2.0
/**
 * Temporary network namespaces for root-only integration tests.
 *
 *   const tmp = tempNetns('link');
 *   afterAll(() => tmp.cleanup());
 *   const a = await tmp.create();          // named nsmt-link-<pid>-<n>
 *
 * Every name starts with 'nsmt-' so leftovers are easy to spot
 * (`ip netns | grep nsmt-`). cleanup() closes every handle it gave out (which
 * also closes their cached netlink sockets) and deletes the names; the
 * namespaces, with their links, then vanish once nothing else references
 * them. It is idempotent and never throws for already-deleted names.
 */
import { SysError, createNetns, deleteNetns, type Netns } from '../../src/sys';

export interface TempNetns {
  /** Creates a uniquely named namespace and returns an open handle to it. */
  create(label?: string): Promise<Netns & { name: string }>;
  /** Names created so far and not yet cleaned up. */
  readonly names: readonly string[];
  /** Closes all handles and deletes all namespaces created by this helper. */
  cleanup(): Promise<void>;
}

let counter = 0;

export function tempNetns(prefix = 't'): TempNetns {
  const created: Array<{ name: string; ns: Netns }> = [];
  return {
    async create(label = '') {
      const name = `nsmt-${prefix}${label ? `-${label}` : ''}-${process.pid}-${++counter}`;
      const ns = await createNetns(name);
      created.push({ name, ns });
      return Object.assign(ns, { name });
    },
    get names() {
      return created.map((c) => c.name);
    },
    async cleanup() {
      const errors: unknown[] = [];
      for (const { name, ns } of created.splice(0)) {
        ns.close();
        try {
          await deleteNetns(name);
        } catch (err) {
          if (!(err instanceof SysError && err.code === 'ENOENT')) errors.push(err);
        }
      }
      if (errors.length > 0) throw new AggregateError(errors, 'tempNetns cleanup failed');
    },
  };
}
