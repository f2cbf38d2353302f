/**
 * `npm run build` makes dist/agent/daemon.js one bundle (scripts/bundle-daemon.mjs). The modules
 * the CLI has loaded when it requires the daemon must stay out of it: a second copy of
 * core/errors.js or config/error.js inside the bundle would make main.js's `instanceof` checks
 * fail for the daemon's errors (a configuration error would exit 1 instead of 2).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '../../..');
const DAEMON = path.join(ROOT, 'dist/agent/daemon.js');

describe.runIf(existsSync(DAEMON))('the daemon bundle', () => {
  const text = readFileSync(DAEMON, 'utf8');

  it('is a bundle holding the daemon and yaml, but none of the modules main.js loads', () => {
    expect(text.startsWith('// nsm-agent daemon bundle')).toBe(true);
    expect(text).toContain('"dist/agent/agent.js"');
    expect(text).toMatch(/"node_modules\/yaml\/dist\/index\.js"/);
    const out = execFileSync(process.execPath, ['-e', `require(${JSON.stringify(path.join(ROOT, 'dist/agent/main.js'))}); console.log(JSON.stringify(Object.keys(require.cache)))`], { encoding: 'utf8' });
    const loaded = (JSON.parse(out) as string[]).filter((f) => f.startsWith(path.join(ROOT, 'dist') + path.sep)).map((f) => path.relative(ROOT, f));
    expect(loaded).toContain('dist/core/errors.js');
    for (const f of loaded) expect(text, f).not.toContain(`"${f}"`);
    expect(text).toContain('require("../core/errors.js")');
  });

  it('leaves gRPC and the other dependencies to be loaded on use', () => {
    expect(text).not.toContain('"node_modules/@grpc/');
    expect(text).toContain('require("@grpc/grpc-js")');
  });
});
