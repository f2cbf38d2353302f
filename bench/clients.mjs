// NSM clients the benchmarks ask the agent with besides grpc-js's (test/harness/clients.mjs
// NsmClient): one without a gRPC library and a compiled one. Same Request, same bytes on the wire.
import http2 from 'node:http2';
import net from 'node:net';
import { api, kernelRequest } from '../test/harness/clients.mjs';

const requestMethod = () => api().ns.networkservice.NetworkService.service.Request;

/**
 * NSM Request from a client without a gRPC library: node:http2 on the unix socket, the message
 * serialized and framed (5-byte gRPC prefix) per call, the answer checked (grpc-status, in the
 * trailers or a trailers-only answer) and deserialized. The wire is the same as grpc-js's;
 * what is left out is grpc-js's own per-call work in the client process (channel,
 * interceptors, call stack), which a Go client does not have either.
 */
export function h2NsClient(socket, deadlineMs = 60_000) {
  const method = requestMethod();
  const session = http2.connect('http://localhost', { createConnection: () => net.connect(socket) });
  session.on('error', () => {}); // each call sees its stream's error
  const call = (req) =>
    new Promise((resolve, reject) => {
      const body = method.requestSerialize(req);
      const frame = Buffer.alloc(5 + body.length);
      frame.writeUInt32BE(body.length, 1);
      body.copy(frame, 5);
      const s = session.request({
        ':method': 'POST',
        ':path': method.path,
        'content-type': 'application/grpc',
        te: 'trailers',
        'grpc-timeout': `${deadlineMs}m`,
      });
      const chunks = [];
      let status;
      let message = '';
      const grpcStatus = (h) => {
        if (h['grpc-status'] === undefined) return;
        status = h['grpc-status'];
        message = decodeURIComponent(String(h['grpc-message'] ?? ''));
      };
      s.on('response', grpcStatus); // trailers-only answer (an error)
      s.on('trailers', grpcStatus);
      s.on('data', (d) => chunks.push(d));
      s.on('error', reject);
      s.on('end', () => {
        if (status !== '0') return reject(new Error(`grpc status ${status}: ${message}`));
        const b = Buffer.concat(chunks);
        if (b.length < 5 || b.readUInt32BE(1) !== b.length - 5) return reject(new Error(`bad gRPC answer (${b.length} bytes)`));
        resolve(method.responseDeserialize(b.subarray(5)));
      });
      s.end(frame);
    });
  return {
    /** Request a KERNEL vWire for `service` into `netns` named `ifname` (kernelRequest). */
    request: (id, service, netns, ifname) => call(kernelRequest(id, service, netns, ifname)),
    dispose: () => session.close(),
  };
}

/**
 * NSM Request from a compiled client: bench/floor/grpc-call.c (libnghttp2, one HTTP/2
 * connection), standing where NSM's own Go clients would. The request is serialized and the
 * answer deserialized here, outside the timing; `ms` is the call as timed inside the C program,
 * from the request's first byte to the server's trailers read. `bin` is the compiled grpc-call
 * (compileC).
 */
export function cNsClient(scope, bin, socket) {
  const method = requestMethod();
  const proc = scope.lineProc(bin, [socket]);
  return {
    /** Request a KERNEL vWire (kernelRequest); resolves with the answer and the call's time. */
    request: async (id, service, netns, ifname) => {
      const req = kernelRequest(id, service, netns, ifname);
      const line = await proc.send(`r ${method.path} ${method.requestSerialize(req).toString('hex')}`);
      const [us, answer] = line.split(' ');
      if (!/^[0-9.]+$/.test(us) || answer === undefined) throw new Error(`grpc-call: ${line}`);
      return { conn: method.responseDeserialize(Buffer.from(answer, 'hex')), ms: Number(us) / 1000 };
    },
  };
}
