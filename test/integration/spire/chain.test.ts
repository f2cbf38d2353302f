/**
 * The seams end to end over real gRPC and mTLS: agent A's client chain (updatepath →
 * updatetoken → authorize client → a gRPC tail like the agent's dial) calls agent B's server
 * chain (updatepath → updatetoken → authorize server with a service policy), with the glue
 * the agent needs: PEER and INCOMING_TOKEN from the call on B, SERVER_PEER filled on A.
 */
import { describe, it, expect, afterEach } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { api, type Connection, type NetworkServiceRequest } from '../../../src/api';
import { realClock } from '../../../src/core/clock';
import { Ctx } from '../../../src/core/ctx';
import { AgentError, toStatus } from '../../../src/core/errors';
import { createLogger } from '../../../src/core/log';
import { chainClient, chainServer, NetworkServiceClient } from '../../../src/core/networkservice';
import { authorizeClient, authorizeServer, ServicePolicy } from '../../../src/networkservice/authorize';
import { updatePathClient, updatePathServer } from '../../../src/networkservice/updatepath';
import { updateTokenClient, updateTokenServer } from '../../../src/networkservice/updatetoken';
import { INCOMING_TOKEN, type TokenSource } from '../../../src/core/token';
import { tokenFromMetadata } from '../../../src/agent/grpc/call-ctx';
import { LocalCa } from '../../../src/spire/ca';
import { PEER, peerFromCall, SERVER_PEER } from '../../../src/spire/peer';
import { channelCredentials } from '../../../src/spire/channel';
import { serverCredentials } from '../../helpers/spire/server-credentials';
import { SpiffeTokenSource, decodeJwt, audienceOf } from '../../../src/spire/token';
import { StaticSource, contextOf } from '../../helpers/spire/static-source';

const ca = LocalCa.create({ trustDomain: 'example.org' });
const A_ID = 'spiffe://example.org/ns/db/agent-a';
const B_ID = 'spiffe://example.org/nsm/agent/b';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

async function agentB(policy: ServicePolicy, lines: string[]): Promise<number> {
  const source = new StaticSource(contextOf(ca.issue(B_ID), ca));
  const tokens = new SpiffeTokenSource(source, 600_000);
  const chain = chainServer(
    updatePathServer('agent-b'),
    updateTokenServer(tokens),
    authorizeServer({ servicePolicy: policy, self: () => source.svid().id }),
  );
  const log = createLogger({ level: 'debug', write: (l) => lines.push(l) });
  const server = new grpc.Server();
  const glue = (fn: (ctx: Ctx, req: any) => Promise<unknown>) => (call: grpc.ServerUnaryCall<any, any>, cb: grpc.sendUnaryData<any>) => {
    let ctx = Ctx.background({ clock: realClock, log }).with(PEER, peerFromCall(call));
    const t = tokenFromMetadata(call.metadata);
    if (t) ctx = ctx.with(INCOMING_TOKEN, t);
    fn(ctx, call.request).then((res) => cb(null, res), (err) => cb(toStatus(err)));
  };
  server.addService(api().ns.networkservice.NetworkService.service, {
    Request: glue((ctx, req: NetworkServiceRequest) => chain.request(ctx, req)),
    Close: glue(async (ctx, conn: Connection) => {
      await chain.close(ctx, conn);
      return {};
    }),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', serverCredentials(source), (err, p) => (err ? reject(err) : resolve(p))),
  );
  cleanups.push(() => new Promise<void>((r) => server.tryShutdown(() => r())));
  return port;
}

/** The server each call of agent A reached, as the client call's auth context shows it. */
const serverPeers: (string | undefined)[] = [];

/** Agent A's gRPC tail: what the agent's dial element does, plus SERVER_PEER. */
function grpcTail(port: number, source: StaticSource, tokens: TokenSource): NetworkServiceClient {
  const ch = channelCredentials(source, { tokens });
  const Ctor = api().ns.networkservice.NetworkService as unknown as typeof grpc.Client;
  const stub = new Ctor(`127.0.0.1:${port}`, ch.credentials, ch.options) as grpc.Client & Record<string, Function>;
  cleanups.push(() => grpc.Client.prototype.close.call(stub)); // `close` is the Close RPC's alias here
  const unary = <T>(ctx: Ctx, method: string, arg: unknown) =>
    new Promise<T>((resolve, reject) => {
      const call: grpc.ClientUnaryCall = stub[method]!(arg, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err: grpc.ServiceError | null, res: T) => {
        const slot = ctx.get(SERVER_PEER);
        if (slot) slot.peer = peerFromCall(call);
        serverPeers.push(peerFromCall(call)?.id);
        if (err) reject(AgentError.from(err));
        else resolve(res);
      });
    });
  return {
    request: (ctx, req) => unary<Connection>(ctx, 'Request', req),
    close: async (ctx, conn) => {
      await unary(ctx, 'Close', conn);
    },
  };
}

function agentA(port: number, opts: { sendTokens?: TokenSource } = {}) {
  const source = new StaticSource(contextOf(ca.issue(A_ID), ca));
  const tokens = new SpiffeTokenSource(source, 600_000);
  return chainClient(updatePathClient('agent-a'), updateTokenClient(tokens), authorizeClient(), grpcTail(port, source, opts.sendTokens ?? tokens));
}

const ctx = () => Ctx.background({ clock: realClock });
const req = (service = 'db-replication'): NetworkServiceRequest => ({ connection: { id: 'conn-1', network_service: service } });

describe('tokens and authorization across two agents', () => {
  it('a request passes mTLS, token chain and policy; the answer carries both hops chained', async () => {
    const port = await agentB(new ServicePolicy([{ service: 'db-replication', allow: ['spiffe://example.org/ns/db/*'] }]), []);
    const conn = await agentA(port).request(ctx(), req());
    const segs = conn.path?.path_segments ?? [];
    expect(segs.map((s) => s.name)).toEqual(['agent-a', 'agent-b']);
    const a = decodeJwt(segs[0]?.token ?? '');
    const b = decodeJwt(segs[1]?.token ?? '');
    expect(a.claims.sub).toBe(A_ID);
    expect(audienceOf(a.claims)).toEqual([B_ID]);
    expect(b.claims.sub).toBe(B_ID);
    expect(serverPeers.at(-1)).toBe(B_ID); // so the authorize client did check next_token_signed
    await agentA(port).close(ctx(), conn);
  });

  it('the host policy refuses another identity, naming both', async () => {
    const lines: string[] = [];
    const port = await agentB(new ServicePolicy([{ service: 'db-replication', allow: ['spiffe://example.org/ns/web/*'] }]), lines);
    const err = await agentA(port).request(ctx(), req()).catch((e: AgentError) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe('PERMISSION_DENIED');
    expect((err as AgentError).message).toContain(`${A_ID} (via ${A_ID}) refused by ${B_ID}`);
    expect(lines.some((l) => l.includes('request refused') && l.includes(A_ID) && l.includes(B_ID))).toBe(true);
    await expect(agentA(port).request(ctx(), req('other-service'))).resolves.toBeTruthy();
  });

  it('a token signed by a key other than the TLS peer, or an expired one, is refused', async () => {
    const port = await agentB(new ServicePolicy([]), []);
    const otherKey = new StaticSource(contextOf(ca.issue(A_ID), ca)); // same ID, different key
    // A SpiffeTokenSource given to channelCredentials always signs with the SVID of the
    // connection; a forger is any other TokenSource.
    const forger = new SpiffeTokenSource(otherKey, 600_000);
    const forgedTokens: TokenSource = { generate: (now, aud, peer) => forger.generate(now, aud, peer) };
    const forged = await agentA(port, { sendTokens: forgedTokens }).request(ctx(), req()).catch((e: AgentError) => e);
    expect((forged as AgentError).code).toBe('PERMISSION_DENIED');
    expect((forged as AgentError).message).toMatch(/prev_token_signed/);

    const inner = new SpiffeTokenSource(new StaticSource(contextOf(ca.issue(A_ID, { now: Date.now() - 7200_000, ttlMs: 86_400_000 }), ca)), 600_000);
    const stale: TokenSource = { generate: (now, aud, peer) => inner.generate(now - 3600_000, aud, peer) };
    const expired = await agentA(port, { sendTokens: stale }).request(ctx(), req()).catch((e: AgentError) => e);
    expect((expired as AgentError).code).toBe('PERMISSION_DENIED');
    expect((expired as AgentError).message).toMatch(/tokens_expired/);
  });
});
