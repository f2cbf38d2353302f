/**
 * The packages leave out of node_modules what Node never loads (scripts/package-prune.mjs):
 * every file of a dependency that the application can reach (esbuild follows each require and
 * import from the built entry points) must still be shipped.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { reachedDistFiles, shipsModuleFile } from '../../../scripts/package-prune.mjs';

const ROOT = path.resolve(__dirname, '../../..');
const ships = shipsModuleFile as (mod: string, rel: string, isDirectory: boolean) => boolean;

/** 'node_modules/a/node_modules/@s/b/lib/x.js' -> ['@s/b', 'lib/x.js'] */
function split(input: string): [string, string] {
  const m = /^(?:.*\/)?node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(input);
  if (!m) throw new Error(`not in node_modules: ${input}`);
  return [m[1]!, m[2]!];
}

describe('package pruning', () => {
  it('drops tests, examples, docs, declarations, maps and addon sources; keeps code and licenses', () => {
    expect(ships('bintrees', 'test/perf/100k', false)).toBe(false);
    expect(ships('bintrees', 'test', true)).toBe(false);
    expect(ships('split', 'examples/pretty.js', false)).toBe(false);
    expect(ships('@grpc/grpc-js', 'build/src/index.d.ts', false)).toBe(false);
    expect(ships('@grpc/grpc-js', 'build/src/index.js.map', false)).toBe(false);
    expect(ships('@grpc/grpc-js', 'src/index.ts', false)).toBe(false);
    expect(ships('bignumber.js', 'doc/API.html', false)).toBe(false);
    expect(ships('yaml', 'README.md', false)).toBe(false);
    expect(ships('node-addon-api', 'napi.h', false)).toBe(false);
    expect(ships('netlink', 'prebuilds/darwin-arm64/node.napi.node', false)).toBe(false);
    expect(ships('xml2js', 'lib/xml2js.bc.js', false)).toBe(false);

    expect(ships('@grpc/grpc-js', 'build/src/index.js', false)).toBe(true);
    expect(ships('yaml', 'dist/doc/Document.js', false)).toBe(true);
    expect(ships('@standard-schema/spec', 'dist/index.cjs', false)).toBe(true); // a module named spec
    expect(ships('netlink', 'prebuilds/linux-x64/node.napi.node', false)).toBe(true);
    expect(ships('yaml', 'LICENSE', false)).toBe(true);
    expect(ships('ajv', 'package.json', false)).toBe(true);
    expect(ships('protobufjs', 'google/protobuf/descriptor.proto', false)).toBe(true);
    // builds require() never takes, and tools' modules
    expect(ships('@opentelemetry/api', 'build/esm/index.js', false)).toBe(false);
    expect(ships('@opentelemetry/api', 'build/src/index.js', false)).toBe(true);
    expect(ships('protobufjs', 'dist/protobuf.min.js', false)).toBe(false);
    expect(ships('@opentelemetry/semantic-conventions', 'dist/index.mjs', false)).toBe(false);
    expect(ships('@opentelemetry/semantic-conventions', 'dist/index.cjs', false)).toBe(true);
    expect(ships('yargs', '', true)).toBe(false);
  });

  it.skipIf(!existsSync(path.join(ROOT, 'dist/agent/main.js')))('ships of dist/ what the CLI, the daemon bundle and the generator reach', () => {
    const reached = (reachedDistFiles as (root: string) => Set<string>)(ROOT);
    const has = (f: string) => reached.has(path.join(ROOT, 'dist', f));
    for (const f of ['agent/main.js', 'agent/daemon.js', 'agent/systemd/generator.js', 'agent/cli/commands.js']) expect(has(f), f).toBe(true);
    // required by the bundle from outside it
    for (const f of ['core/errors.js', 'agent/config/error.js', 'api/descriptor.js']) expect(has(f), f).toBe(true);
    // inside the bundle only
    expect(has('agent/agent.js')).toBe(false);
  });

  it.skipIf(!existsSync(path.join(ROOT, 'dist/agent/main.js')))(
    'ships every dependency file the application reaches',
    async () => {
      const result = await build({
        entryPoints: [path.join(ROOT, 'dist/agent/main.js')],
        bundle: true,
        platform: 'node',
        target: 'node20',
        write: false,
        metafile: true,
        logLevel: 'silent',
        outdir: path.join(ROOT, 'out/prune-check'),
        external: ['*.node'],
        // resolve as Node's require() does: no "module" condition or field (esbuild's defaults)
        conditions: ['node'],
        mainFields: ['main'],
      });
      const reached = Object.keys(result.metafile.inputs).filter((i) => i.includes('node_modules/'));
      expect(reached.length).toBeGreaterThan(100);
      const dropped = reached.filter((i) => !ships(...split(i), false));
      expect(dropped).toEqual([]);
    },
    60_000,
  );
});
