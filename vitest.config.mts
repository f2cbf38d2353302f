import { defineConfig } from 'vitest/config';

// Two groups, run one after the other: the host tests (files in parallel), then the VM system
// test alone, whose qemu guests need both cores and would starve the host tests' timings.
export default defineConfig({
  test: {
    // setns and the native addon are per process: run test files in forked processes.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    globalSetup: ['test/helpers/leak-check.ts'],
    projects: [
      {
        extends: true,
        test: { name: 'host', include: ['test/**/*.test.ts'], exclude: ['test/vm/**'], sequence: { groupOrder: 0 } },
      },
      {
        extends: true,
        test: { name: 'vm', include: ['test/vm/**/*.test.ts'], fileParallelism: false, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
