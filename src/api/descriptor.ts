/**
 * The NSM and agent .proto files as one protobufjs JSON descriptor (the message and service
 * types, resolved). `npm run build` writes it next to the compiled module (dist/api/descriptor.json,
 * scripts/proto-descriptor.mjs) so that the daemon and the CLI build their codecs without
 * parsing .proto text; run from src/, the .proto files are parsed in place.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import path from 'node:path';
import type { INamespace } from 'protobufjs';

/** The files the agent serves and calls, and the directories their imports resolve in. */
export const PROTO_FILES = ['networkservice.proto', 'connection.proto', 'registry.proto', 'health.proto', 'agent.proto', 'ipam.proto'];
const PROTO_DIRS = ['networkservice', 'registry', 'grpc', 'agent', 'ipam'];

/** proto/ sits two levels above both src/api and dist/api. */
export const PROTO_ROOT = path.resolve(__dirname, '..', '..', 'proto');

/** Where the build puts the descriptor: beside this module. */
export const DESCRIPTOR_FILE = path.join(__dirname, 'descriptor.json');

/**
 * Parses the .proto files as @grpc/proto-loader's loadSync does (field names as written, imports
 * looked up in PROTO_DIRS, google/protobuf well-known types from protobufjs).
 */
export function parseProtos(): INamespace {
  const protobuf = require('protobufjs') as typeof import('protobufjs');
  const root = new protobuf.Root();
  const fallback = root.resolvePath.bind(root);
  root.resolvePath = (origin, target) => {
    if (path.isAbsolute(target)) return target;
    for (const dir of PROTO_DIRS) {
      const full = path.join(PROTO_ROOT, dir, target);
      try {
        accessSync(full, constants.R_OK);
        return full;
      } catch {
        // not in this directory
      }
    }
    return fallback(origin, target);
  };
  root.loadSync(PROTO_FILES, { keepCase: true });
  root.resolveAll();
  return root.toJSON();
}

/** The built descriptor, or the .proto files parsed when there is none (running from src/). */
export function descriptor(): INamespace {
  let text: string;
  try {
    text = readFileSync(DESCRIPTOR_FILE, 'utf8');
  } catch {
    return parseProtos();
  }
  return JSON.parse(text) as INamespace;
}
