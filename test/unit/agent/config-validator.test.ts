/**
 * agent.yaml's validator as `npm run build` generates it (scripts/config-validator.mjs: ajv
 * standalone code) answers as the one compiled at run time: same verdict, same first error.
 */
import { describe, it, expect } from 'vitest';
import { createRequire } from 'node:module';
import Ajv from 'ajv';
import standalone from 'ajv/dist/standalone';
import { AJV_OPTIONS } from '../../../src/agent/config';
import { AGENT_SCHEMA } from '../../../src/agent/config/schema';

const docs: unknown[] = [
  {},
  { name: 'host-a', logLevel: 'debug' },
  { name: 'BAD NAME' },
  { logLevel: 'loud' },
  { unknownKey: 1 },
  { endpoints: [{ name: 'e', services: ['s'], cidr: '10.0.0.0/24', interface: 'a-name-longer-than-15' }] },
  { registry: { url: 'ftp://x' } },
  { connections: [{ url: 3 }] },
];

describe('generated config validator', () => {
  it('gives the verdict and first error of the schema compiled at run time', () => {
    const ajv = new Ajv({ ...AJV_OPTIONS, code: { source: true } });
    const code = standalone(ajv, ajv.compile(AGENT_SCHEMA));
    const mod = { exports: {} as any };
    new Function('module', 'exports', 'require', code)(mod, mod.exports, createRequire(__filename));
    const generated = mod.exports as ((d: unknown) => boolean) & { errors?: unknown[] };
    const compiled = new Ajv(AJV_OPTIONS).compile(AGENT_SCHEMA);
    let refused = 0;
    for (const d of docs) {
      const ok = compiled(d);
      expect(generated(d), JSON.stringify(d)).toBe(ok);
      if (!ok) refused++;
      expect(generated.errors?.[0] ?? null).toEqual(compiled.errors?.[0] ?? null);
    }
    expect(refused).toBeGreaterThanOrEqual(5);
  });
});
