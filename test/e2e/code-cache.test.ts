/**
 * Under systemd (CacheDirectory=, so CACHE_DIRECTORY) `nsm-agent run` writes the code cache of
 * its bundle once its start is over, and the next start compiles from it
 * (src/agent/daemon-load.ts): the cache must carry the flags the daemon is loaded with,
 * whatever the daemon sets later.
 */
import { describe, it, expect, afterAll } from 'vitest';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startAgent, stopAll } from '../harness/agent.mjs';
import { isRoot, sleep, uniq } from '../harness/exec.mjs';

const bundled = existsSync(path.resolve(__dirname, '../../dist/agent/daemon.js.cache'));

describe.runIf(isRoot && bundled)('the code cache under systemd', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nsme-cache-'));
  const cacheFile = path.join(dir, 'daemon.js.cache');
  afterAll(async () => {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is written after the first start and used by the next', async () => {
    const name = uniq('cache');
    const env = { ...process.env, CACHE_DIRECTORY: dir };
    const first = await startAgent({ name }, { env });
    expect(first.logs.join('')).toContain('msg="code cache" agent=' + name + ' cache=none');
    const deadline = Date.now() + 10_000;
    while (!existsSync(cacheFile)) {
      if (Date.now() > deadline) throw new Error(`no ${cacheFile}: ${first.logs.join('')}`);
      await sleep(100);
    }
    expect(statSync(cacheFile).mode & 0o777).toBe(0o600);
    await first.stop();

    const second = await startAgent({ name }, { env });
    expect(second.logs.join('')).toContain('msg="code cache" agent=' + name + ' cache=used');
    await second.stop();
  });
});
