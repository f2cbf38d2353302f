/**
 * Short-lived SVIDs from Workload API doubles (one per agent, same CA) under load: a client
 * keeps calling a server while both 2 s SVIDs rotate; new handshakes present the new
 * certificates, the open connection keeps working, tokens keep verifying, and a restart of the
 * server's Workload API is survived.
 */
import { describe, it, expect, afterEach } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { peerFromCall } from '../../../src/spire/peer';
import { channelCredentials } from '../../../src/spire/channel';
import { listenMtls } from '../../../src/spire/listen';
import { recycleConnections, serverCredentials } from '../../helpers/spire/server-credentials';
import { checkExpiry, SpiffeTokenSource, TOKEN_HEADER, verifyEs256 } from '../../../src/spire/token';
import { WorkloadX509Source } from '../../../src/spire/workload';
import { FakeWorkloadApi } from '../../helpers/spire/workload-api';
import { sleep } from '../../helpers/spire/wait';

const SERVER_ID = 'spiffe://example.org/nsm/agent/b';
const CLIENT_ID = 'spiffe://example.org/nsm/agent/a';
const raw = (b: Buffer) => b;
const SERVICE: grpc.ServiceDefinition = {
  Who: { path: '/test.Echo/Who', requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw },
};
const Client = grpc.makeGenericClientConstructor(SERVICE, 'Echo');

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

describe('rotation under load', () => {
  // listenMtls recycles each connection exactly, so 4 s SVIDs work; serverCredentials with
  // recycleConnections drains on a timer, which needs SVIDs of several seconds (as in the e2e).
  // (Below ~4 s, token expiry in whole seconds eats most of a rotated certificate's rest.)
  for (const [mode, ttlMs, pauseMs] of [
    ['listenMtls', 4000, 80],
    ['serverCredentials', 6000, 120],
  ] as const)
  it(`keeps calls passing through rotations and a Workload API restart (${mode}, ${ttlMs} ms SVIDs)`, async () => {
    const apiB = await FakeWorkloadApi.start({ entries: [{ id: SERVER_ID, ttlMs }] });
    cleanups.push(() => apiB.close());
    const apiA = await FakeWorkloadApi.start({ entries: [{ id: CLIENT_ID, ttlMs }], sameCasAs: apiB });
    cleanups.push(() => apiA.close());
    const backoff = { initialMs: 50, maxMs: 200 };
    const server = new WorkloadX509Source({ address: apiB.address, backoff });
    cleanups.push(() => server.close());
    const client = new WorkloadX509Source({ address: apiA.address, backoff });
    cleanups.push(() => client.close());
    await Promise.all([server.ready(), client.ready()]);

    const clientCerts = new Set<string>();
    const grpcServer = new grpc.Server();
    grpcServer.addService(SERVICE, {
      Who: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        const p = peerFromCall(call);
        if (!p) return cb({ code: grpc.status.UNAUTHENTICATED, details: 'no peer' });
        clientCerts.add(p.certificate.fingerprint256);
        try {
          const jwt = verifyEs256(String(call.metadata.get(TOKEN_HEADER)[0] ?? ''), p.publicKey);
          checkExpiry(jwt.claims, Date.now());
          cb(null, Buffer.from(p.id));
        } catch (err) {
          cb({ code: grpc.status.PERMISSION_DENIED, details: (err as Error).message });
        }
      },
    });
    let port: number;
    if (mode === 'serverCredentials') {
      port = await new Promise<number>((resolve, reject) =>
        grpcServer.bindAsync('127.0.0.1:0', serverCredentials(server), (err, p) => (err ? reject(err) : resolve(p))),
      );
      const stop = recycleConnections((grace) => grpcServer.drain(`127.0.0.1:${port}`, grace), server, { graceMs: 1000 });
      cleanups.push(stop);
    } else {
      const l = await listenMtls(grpcServer, '127.0.0.1:0', server, { recycle: { graceMs: 1000 } });
      port = l.port;
      cleanups.push(() => l.close());
    }
    cleanups.push(() => grpcServer.forceShutdown());

    const dial = () => {
      const ch = channelCredentials(client, { tokens: new SpiffeTokenSource(client, 60_000) });
      const c = new Client(`127.0.0.1:${port}`, ch.credentials, ch.options) as unknown as grpc.Client & { Who: Function };
      cleanups.push(() => c.close());
      return { c, ch };
    };
    const who = (c: grpc.Client & { Who: Function }) =>
      new Promise<string>((resolve, reject) =>
        c.Who(Buffer.alloc(0), { deadline: Date.now() + 2000 }, (err: grpc.ServiceError | null, res?: Buffer) => (err ? reject(err) : resolve(String(res)))),
      );

    const steady = dial();
    const serverCerts = new Set<string>();
    const errors: string[] = [];
    let calls = 0;
    for (let round = 0; round < 12; round++) {
      for (let i = 0; i < 4; i++) {
        calls++;
        await who(steady.c).catch((e: Error) => errors.push(`r${round} steady ${e.message} srv-exp-in=${server.svid().expiresAt - Date.now()} cli-exp-in=${client.svid().expiresAt - Date.now()}`));
        await sleep(pauseMs);
      }
      const fresh = dial();
      calls++;
      await who(fresh.c).catch((e: Error) => errors.push(`r${round} fresh ${e.message} srv-exp-in=${server.svid().expiresAt - Date.now()}`));
      const fp = fresh.ch.peer()?.certificate.fingerprint256;
      if (fp) serverCerts.add(fp);
      if (round === 6) await apiB.restart();
    }
    expect(calls).toBe(60);
    expect(errors).toEqual([]);
    expect(serverCerts.size).toBeGreaterThanOrEqual(2); // new handshakes saw rotated server SVIDs
    expect(clientCerts.size).toBeGreaterThanOrEqual(2); // and the server saw rotated client SVIDs
  }, 30_000);
});
