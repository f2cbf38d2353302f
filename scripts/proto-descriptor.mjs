#!/usr/bin/env node
// Part of `npm run build`: writes dist/api/descriptor.json, the .proto files under proto/ as one
// protobufjs JSON descriptor (src/api/descriptor.ts reads it at run time).
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { parseProtos, DESCRIPTOR_FILE } = require('../dist/api/descriptor.js');
writeFileSync(DESCRIPTOR_FILE, JSON.stringify(parseProtos()) + '\n');
