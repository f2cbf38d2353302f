/**
 * The CLI's clients of a running agent on its unix socket: the control API (nsmagent.v1.Agent)
 * and the NSM registry it serves there. A small gRPC client over node:http2, for unary and
 * server-streaming calls only, with messages encoded from the same descriptor as the agent's
 * grpc-js servers use and in the same form (src/api/codec.ts): requests and replies are what a
 * grpc-js client would send and receive, and a command loads neither grpc-js nor protobufjs.
 */
import type { ClientHttp2Session, IncomingHttpHeaders } from 'node:http2';
import { Codecs, decodeMessage, encodeMessage, type DescriptorNode, type MessageType } from '../api/codec';
import { AgentError, ERROR_CODE_HEADER, ERROR_COMPONENT_HEADER, fromStatus } from '../core/errors';
import { descriptor } from '../api/descriptor';

export { socketPath } from './socket-path';

/** One service on the agent's socket, e.g. `nsmagent.v1.Agent`. */
export interface ServiceClient {
  readonly service: string;
  readonly connection: Connection;
}

export interface LocalClients {
  agent: ServiceClient;
  ns: ServiceClient;
  nse: ServiceClient;
  close(): void;
}

let codecs: Codecs | undefined;
function codecOf(service: string, method: string): { req: MessageType; res: MessageType } {
  const m = (codecs ??= new Codecs(descriptor() as DescriptorNode)).method(service, method);
  if (!m) throw new AgentError('INTERNAL', `no method ${service}/${method}`);
  return m;
}

/** One HTTP/2 connection to the socket, opened on the first call; close() ends it. */
class Connection {
  private session: ClientHttp2Session | undefined;
  /** What ended the connection, e.g. `connect ENOENT <socket>`: what a failed call reports. */
  error: Error | undefined;
  constructor(readonly socket: string) {}

  open(): ClientHttp2Session {
    if (this.session && !this.session.closed && !this.session.destroyed) return this.session;
    const http2 = require('node:http2') as typeof import('node:http2');
    const net = require('node:net') as typeof import('node:net');
    const s = http2.connect('http://localhost', { createConnection: () => net.connect(this.socket) });
    s.on('error', (err: Error) => (this.error = err)); // each call reports it
    this.session = s;
    return s;
  }

  close(): void {
    this.session?.close();
    this.session = undefined;
  }
}

export function localClients(socket: string): LocalClients {
  const connection = new Connection(socket);
  return {
    agent: { service: 'nsmagent.v1.Agent', connection },
    ns: { service: 'registry.NetworkServiceRegistry', connection },
    nse: { service: 'registry.NetworkServiceEndpointRegistry', connection },
    close: () => connection.close(),
  };
}

/** Frames a message as gRPC does: uncompressed flag, 4-byte big-endian length, bytes. */
function frame(msg: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + msg.length);
  out.writeUInt32BE(msg.length, 1);
  out.set(msg, 5);
  return out;
}

/**
 * Runs one call; `onMessage` gets each reply decoded. Resolves at the OK status, rejects with an
 * AgentError for any other status (fromStatus, as for grpc-js errors), a transport failure
 * (UNAVAILABLE) or the deadline (DEADLINE_EXCEEDED).
 */
function call(client: ServiceClient, method: string, req: unknown, timeoutMs: number, onMessage: (m: unknown) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let codec: { req: MessageType; res: MessageType };
    try {
      codec = codecOf(client.service, method);
    } catch (err) {
      return reject(AgentError.from(err));
    }
    let done = false;
    const finish = (err?: AgentError) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err && !stream.closed) stream.close(0x8); // CANCEL: nothing more is read
      if (err) reject(err);
      else resolve();
    };
    const session = client.connection.open();
    const stream = session.request({
      ':method': 'POST',
      ':path': `/${client.service}/${method}`,
      'content-type': 'application/grpc',
      te: 'trailers',
      'grpc-timeout': `${Math.max(1, Math.ceil(timeoutMs))}m`,
    });
    const timer = setTimeout(() => finish(new AgentError('DEADLINE_EXCEEDED', `Deadline exceeded after ${(timeoutMs / 1000).toFixed(3)}s`)), timeoutMs);
    let pending: Buffer = Buffer.alloc(0);
    const status = (h: IncomingHttpHeaders): boolean => {
      const code = h['grpc-status'];
      if (code === undefined) return false;
      const details = decodeURIComponent(String(h['grpc-message'] ?? ''));
      finish(Number(code) === 0 ? undefined : fromStatus(Number(code), details, undefined, trailerMetadata(h)));
      return true;
    };
    stream.on('response', (h) => {
      if (status(h)) return; // trailers-only reply
      const http = Number(h[':status']);
      if (http !== 200) finish(new AgentError('UNAVAILABLE', `the agent answered HTTP ${http}, not gRPC`));
    });
    stream.on('data', (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      while (!done && pending.length >= 5) {
        const len = pending.readUInt32BE(1);
        if (pending.length < 5 + len) break;
        if (pending[0] !== 0) return finish(new AgentError('INTERNAL', 'compressed reply: not requested'));
        const body = pending.subarray(5, 5 + len);
        pending = pending.subarray(5 + len);
        try {
          onMessage(decodeMessage(codec.res, body));
        } catch (err) {
          return finish(new AgentError('INTERNAL', `undecodable ${codec.res.fullName}: ${(err as Error).message}`));
        }
      }
    });
    stream.on('trailers', (h) => status(h));
    stream.on('error', (err: Error) => finish(new AgentError('UNAVAILABLE', (err.cause instanceof Error ? err.cause : (client.connection.error ?? err)).message)));
    stream.on('close', () => finish(new AgentError('UNAVAILABLE', 'connection closed before the reply ended')));
    try {
      stream.end(frame(encodeMessage(codec.req, req as Record<string, unknown>)));
    } catch (err) {
      finish(new AgentError('INVALID_ARGUMENT', `cannot encode ${codec.req.fullName}: ${(err as Error).message}`));
    }
  });
}

/** Calls a unary method with a deadline; errors are AgentErrors. */
export async function unaryCall<T>(client: ServiceClient, method: string, req: unknown, timeoutMs = 20_000): Promise<T> {
  let reply: unknown;
  let n = 0;
  await call(client, method, req, timeoutMs, (m) => {
    reply = m;
    n++;
  });
  if (n !== 1) throw new AgentError('INTERNAL', `${client.service}/${method} answered ${n} messages, not 1`);
  return reply as T;
}

/** Reads a server stream to its end (a non-watch registry Find). */
export async function streamAll<T>(client: ServiceClient, method: string, req: unknown, timeoutMs = 20_000): Promise<T[]> {
  const out: T[] = [];
  await call(client, method, req, timeoutMs, (m) => out.push(m as T));
  return out;
}

/** The stable error code and component the agent sends in its trailers, as fromStatus reads them. */
function trailerMetadata(h: IncomingHttpHeaders): Parameters<typeof fromStatus>[3] {
  return {
    get: (key: string) => {
      const v = key === ERROR_CODE_HEADER || key === ERROR_COMPONENT_HEADER ? h[key] : undefined;
      return typeof v === 'string' ? [v] : [];
    },
  };
}
