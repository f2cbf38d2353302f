/**
 * gRPC clients for the CLI: the agent's control API and the NSM registry on the local socket.
 */
import * as grpc from '@grpc/grpc-js';
import { CHANNEL_OPTIONS, api } from '../api';
import { DEFAULT_SOCKET } from './config';
import { AgentError } from '../core/errors';

export function socketPath(flag?: string): string {
  return flag || process.env['NSM_AGENT_SOCKET'] || DEFAULT_SOCKET;
}

export interface LocalClients {
  agent: grpc.Client & Record<string, Function>;
  ns: grpc.Client & Record<string, Function>;
  nse: grpc.Client & Record<string, Function>;
  close(): void;
}

export function localClients(socket: string): LocalClients {
  const target = `unix://${socket}`;
  const creds = grpc.credentials.createInsecure();
  const a = api();
  const Agent = a.agent.nsmagent.v1.Agent as unknown as typeof grpc.Client;
  const agent = new Agent(target, creds, CHANNEL_OPTIONS) as LocalClients['agent'];
  const opts = { channelOverride: agent.getChannel() } as grpc.ClientOptions;
  const ns = new (a.reg.registry.NetworkServiceRegistry as unknown as typeof grpc.Client)(target, creds, opts) as LocalClients['ns'];
  const nse = new (a.reg.registry.NetworkServiceEndpointRegistry as unknown as typeof grpc.Client)(target, creds, opts) as LocalClients['nse'];
  return {
    agent,
    ns,
    nse,
    close: () => agent.close(),
  };
}

/** Calls a unary method with a deadline; gRPC errors become AgentErrors. */
export function unaryCall<T>(client: grpc.Client & Record<string, Function>, method: string, req: unknown, timeoutMs = 20_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const fn = client[method];
    if (!fn) return reject(new AgentError('INTERNAL', `no method ${method}`));
    fn.call(client, req, { deadline: Date.now() + timeoutMs }, (err: grpc.ServiceError | null, res: T) => {
      if (err) reject(AgentError.from(err));
      else resolve(res);
    });
  });
}

/** Reads a server stream to its end (a non-watch registry Find). */
export function streamAll<T>(client: grpc.Client & Record<string, Function>, method: string, req: unknown, timeoutMs = 20_000): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const fn = client[method];
    if (!fn) return reject(new AgentError('INTERNAL', `no method ${method}`));
    const out: T[] = [];
    const call = fn.call(client, req, { deadline: Date.now() + timeoutMs }) as grpc.ClientReadableStream<T>;
    call.on('data', (d: T) => out.push(d));
    call.on('error', (err: grpc.ServiceError) => reject(AgentError.from(err)));
    call.on('end', () => resolve(out));
  });
}
