#!/usr/bin/env node
// Part of `npm run build`: writes dist/agent/config/validate.js, agent.yaml's schema validator as
// ajv standalone code (src/agent/config/index.ts uses it when it was made from the same schema).
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const Ajv = require('ajv').default;
const standalone = require('ajv/dist/standalone').default;
const config = require('../dist/agent/config/index.js');
const { AGENT_SCHEMA } = require('../dist/agent/config/schema.js');

const ajv = new Ajv({ ...config.AJV_OPTIONS, code: { source: true } });
const code = standalone(ajv, ajv.compile(AGENT_SCHEMA));
const out = path.join(path.dirname(require.resolve('../dist/agent/config/index.js')), 'validate.js');
writeFileSync(out, `${code}\nmodule.exports.schemaText = ${JSON.stringify(JSON.stringify(AGENT_SCHEMA))};\n`);
