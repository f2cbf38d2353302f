/**
 * NSM's NetworkService and registry APIs as upstream's generated code sees them: grpc-js
 * clients and service definitions built from upstream's own networkservice.proto,
 * connection.proto, connectioncontext.proto and registry.proto (test/fixtures/upstream), with
 * the protos' field names kept (snake_case), so that only the wire format is shared with the
 * agent's code. Messages are plain objects; absent fields decode to their defaults.
 */
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const FIXTURES = path.resolve(__dirname, '../fixtures/upstream');

/* eslint-disable @typescript-eslint/no-explicit-any */
type Ctor = (new (target: string, creds: grpc.ChannelCredentials, opts?: grpc.ChannelOptions) => grpc.Client & Record<string, any>) & {
  service: grpc.ServiceDefinition;
};

function load(file: string): any {
  const defs = protoLoader.loadSync(path.join(FIXTURES, file), {
    keepCase: true,
    enums: String,
    longs: Number,
    defaults: true,
    includeDirs: [FIXTURES],
  });
  return grpc.loadPackageDefinition(defs);
}

const ns = load('networkservice.proto');
const reg = load('registry.proto');

/** networkservice.NetworkService (Request, Close) from upstream's proto. */
export const UpstreamNetworkService: Ctor = ns.networkservice.NetworkService;
/** registry.NetworkServiceRegistry from upstream's proto. */
export const UpstreamNsRegistry: Ctor = reg.registry.NetworkServiceRegistry;
/** registry.NetworkServiceEndpointRegistry from upstream's proto. */
export const UpstreamNseRegistry: Ctor = reg.registry.NetworkServiceEndpointRegistry;

/** Upstream's messages as decoded here (keepCase). */
export interface UpMechanism {
  cls: string;
  type: string;
  parameters: Record<string, string>;
}
export interface UpPathSegment {
  name: string;
  id: string;
  token: string;
  expires: { seconds: number; nanos: number } | null;
  metrics: Record<string, string>;
}
export interface UpConnection {
  id: string;
  network_service: string;
  mechanism: UpMechanism | null;
  context: any;
  labels: Record<string, string>;
  path: { index: number; path_segments: UpPathSegment[] } | null;
  network_service_endpoint_name: string;
  payload: string;
  state: string;
}
export interface UpRequest {
  connection: UpConnection | null;
  mechanism_preferences: UpMechanism[];
}
export interface UpNetworkService {
  name: string;
  payload: string;
  matches: any[];
  path_ids: string[];
}
export interface UpNse {
  name: string;
  network_service_names: string[];
  network_service_labels: Record<string, { labels: Record<string, string> }>;
  url: string;
  expiration_time: { seconds: number; nanos: number } | null;
  initial_registration_time: { seconds: number; nanos: number } | null;
  path_ids: string[];
}

/** A unary call of an upstream client as a promise; `headers` gets the response headers. */
export function unary<T>(
  client: grpc.Client & Record<string, any>,
  method: string,
  req: unknown,
  opts: { timeoutMs?: number; metadata?: grpc.Metadata; headers?: (md: grpc.Metadata) => void } = {},
): Promise<T> {
  return new Promise((resolve, reject) => {
    const call = client[method](req, opts.metadata ?? new grpc.Metadata(), { deadline: Date.now() + (opts.timeoutMs ?? 15_000) }, (err: Error | null, res: T) =>
      err ? reject(err) : resolve(res),
    );
    if (opts.headers) call.on('metadata', opts.headers);
  });
}

/** Every answer of a server-streaming Find (watch false) of an upstream client. */
export function findAll<T>(client: grpc.Client & Record<string, any>, query: unknown, timeoutMs = 15_000): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const out: T[] = [];
    const call = client['Find'](query, { deadline: Date.now() + timeoutMs });
    call.on('data', (r: T) => out.push(r));
    call.on('error', reject);
    call.on('end', () => resolve(out));
  });
}
