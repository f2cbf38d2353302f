// The gRPC server floor of a local connect (bench/connect-local.mjs): a grpc-js server of
// networkservice.NetworkService on a unix socket, built as the agent builds its own (the agent's
// service definition and SERVER_OPTIONS), whose Request answers at once with a fixed answer
// (the agent's own answer to a local connect). What the agent's gRPC server costs per call,
// node:http2 and grpc-js together (request parsed, answer serialized), before any NSM work.
//
// Usage: node grpc-floor.mjs SOCKET; first line on stdin: the answer message, hex; prints
// "ready" once serving. Exits when stdin closes.
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { rmSync } from 'node:fs';

const require = createRequire(import.meta.url);
const grpc = require('@grpc/grpc-js');
const { api, SERVER_OPTIONS } = require('../../dist/api/index.js');

const socket = process.argv[2];
const lines = createInterface({ input: process.stdin });
lines.once('line', (hex) => {
  const service = api().ns.networkservice.NetworkService.service;
  const answer = service.Request.responseDeserialize(Buffer.from(hex, 'hex'));
  const server = new grpc.Server(SERVER_OPTIONS);
  server.addService(service, {
    Request: (_call, cb) => cb(null, answer),
    Close: (_call, cb) => cb(null, {}),
  });
  rmSync(socket, { force: true });
  server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (err) => {
    process.stdout.write(err ? `error ${err.message}\n` : 'ready\n');
  });
});
lines.on('close', () => process.exit(0));
