/**
 * vl3-ipam as upstream NSM's generated code sees it: a grpc-js client and service definition
 * built from upstream's own ipam.proto (test/fixtures/upstream), with proto-loader's default
 * field names (camelCase), so that only the wire format is shared with the agent's code.
 */
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { waitFor } from './spire/wait';

export interface UpstreamRequest {
  type?: 'UNDEFINED' | 'ALLOCATE' | 'DELETE';
  prefix?: string;
  excludePrefixes?: string[];
}
export interface UpstreamResponse {
  prefix: string;
  excludePrefixes: string[];
}
type Duplex = grpc.ClientDuplexStream<UpstreamRequest, UpstreamResponse>;
export type UpstreamIpamClient = grpc.Client & { ManagePrefixes(): Duplex };
type IpamCtor = new (target: string, creds: grpc.ChannelCredentials, opts?: grpc.ChannelOptions) => UpstreamIpamClient;

/** ipam.IPAM from upstream's proto: the client constructor, with `.service` for servers. */
export const UpstreamIpam = (() => {
  const defs = protoLoader.loadSync(path.resolve(__dirname, '../fixtures/upstream/ipam.proto'), { enums: String, defaults: true });
  return (grpc.loadPackageDefinition(defs) as unknown as { ipam: { IPAM: IpamCtor & { service: grpc.ServiceDefinition } } }).ipam.IPAM;
})();

/** A client of a tcp:// or unix:// URL with these credentials (default plain). */
export function upstreamIpamClient(url: string, credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure()): UpstreamIpamClient {
  const u = new URL(url);
  return new UpstreamIpam(u.protocol === 'unix:' ? `unix://${u.pathname}` : u.host, credentials);
}

/** One ManagePrefixes stream of an upstream client, with what came back. cancel() when done. */
export class UpstreamStream {
  readonly responses: UpstreamResponse[] = [];
  status: grpc.StatusObject | undefined;
  private readonly call: Duplex;
  constructor(client: UpstreamIpamClient) {
    this.call = client.ManagePrefixes();
    this.call.on('data', (r: UpstreamResponse) => this.responses.push(r));
    this.call.on('error', () => {});
    this.call.on('status', (s: grpc.StatusObject) => (this.status = s));
  }
  /** Sends ALLOCATE and waits for its response; throws if the stream ends instead. */
  async allocate(prefix = '', excludePrefixes: string[] = []): Promise<UpstreamResponse> {
    const n = this.responses.length;
    this.call.write({ type: 'ALLOCATE', prefix, excludePrefixes });
    await waitFor(() => this.responses.length > n || this.status, 3000, 'a PrefixResponse');
    const r = this.responses[n];
    if (!r) throw new Error(`stream ended: ${this.status?.details}`);
    return r;
  }
  send(req: UpstreamRequest): void {
    this.call.write(req);
  }
  end(): void {
    this.call.end();
  }
  cancel(): void {
    this.call.cancel();
  }
  ended(): Promise<grpc.StatusObject> {
    return waitFor(() => this.status, 3000, 'the stream status');
  }
}
