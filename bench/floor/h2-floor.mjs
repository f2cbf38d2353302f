// The Node HTTP/2 floor of a gRPC call (bench/connect-local.mjs): a node:http2 server on a unix
// socket that answers every call at once, with no work behind it, with a fixed gRPC message
// (the agent's own answer to a local connect, so the client reads and parses the same bytes).
// What any Node gRPC service pays per unary call here, before its handler does anything:
// node:http2 on both ends, the unix socket, the process wake-ups. No grpc-js: the agent's
// server adds its own work on top of this.
//
// Usage: node h2-floor.mjs SOCKET; first line on stdin: the answer message, hex; prints "ready"
// once listening. Exits when stdin closes.
import http2 from 'node:http2';
import { createInterface } from 'node:readline';
import { rmSync } from 'node:fs';

const socket = process.argv[2];
const lines = createInterface({ input: process.stdin });
lines.once('line', (hex) => {
  const body = Buffer.from(hex, 'hex');
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  body.copy(frame, 5);
  rmSync(socket, { force: true });
  const server = http2.createServer();
  server.on('stream', (stream) => {
    stream.on('data', () => {});
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(frame);
    });
  });
  server.listen(socket, () => process.stdout.write('ready\n'));
});
lines.on('close', () => process.exit(0));
