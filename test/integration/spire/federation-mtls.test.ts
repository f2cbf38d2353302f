/**
 * A bundle fetched from a SPIFFE bundle endpoint is applied to a running mTLS listener
 * (listenMtls) and dialer (channelCredentials): peers of the federated trust domain are
 * accepted from then on, and connections already open are not re-made.
 */
import { describe, it, expect, afterEach } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { FakeClock } from '../../../src/core/clock';
import { serveBundleEndpoint } from '../../../src/spire/bundle-endpoint';
import { LocalCa } from '../../../src/spire/ca';
import { channelCredentials } from '../../../src/spire/channel';
import { FederatedX509Source } from '../../../src/spire/federation';
import { listenMtls } from '../../../src/spire/listen';
import { peerFromCall } from '../../../src/spire/peer';
import { toPem } from '../../../src/spire/x509';
import { contextOf, StaticSource } from '../../helpers/spire/static-source';

const raw = (b: Buffer) => b;
const SERVICE: grpc.ServiceDefinition = {
  Who: { path: '/test.Echo/Who', requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw },
};
const Client = grpc.makeGenericClientConstructor(SERVICE, 'Echo');
type EchoClient = grpc.Client & { Who: Function };

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

function who(c: EchoClient): Promise<string> {
  return new Promise((resolve, reject) =>
    c.Who(Buffer.alloc(0), { deadline: Date.now() + 3000 }, (err: grpc.ServiceError | null, res?: Buffer) => (err ? reject(err) : resolve(String(res)))),
  );
}

describe('federation by bundle endpoint, applied to mTLS while running', () => {
  it('a listener and a dialer trust domain-b.org once its bundle is fetched; open connections stay', async () => {
    const caA = LocalCa.create({ trustDomain: 'domain-a.org' });
    const caB = LocalCa.create({ trustDomain: 'domain-b.org' });

    // domain-b.org's bundle endpoint
    const bSource = new StaticSource(contextOf(caB.issue('spiffe://domain-b.org/host-b'), caB));
    const endpoint = await serveBundleEndpoint(bSource, '127.0.0.1:0', { refreshHintS: 60 });
    cleanups.push(() => endpoint.close());

    // host a: federates with domain-b.org by its endpoint; serves over mTLS. Its first fetch
    // waits for the bootstrap bundle, held back until `release`.
    let release = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const aSource = new FederatedX509Source(
      new StaticSource(contextOf(caA.issue('spiffe://domain-a.org/host-a'), caA)),
      [{ trustDomain: 'domain-b.org', bundleEndpoint: `https://127.0.0.1:${endpoint.port}/`, endpointId: 'spiffe://domain-b.org/host-b', bundle: '/b.pem' }],
      {
        clock: new FakeClock(Date.now()),
        readFile: async () => {
          await gate;
          return Buffer.from(toPem(caB.bundle()));
        },
      },
    );
    cleanups.push(() => aSource.close());
    const server = new grpc.Server();
    server.addService(SERVICE, { Who: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from(peerFromCall(call)?.id ?? '')) });
    const listener = await listenMtls(server, '127.0.0.1:0', aSource);
    cleanups.push(() => listener.close());
    const dial = (source: StaticSource | FederatedX509Source, port = listener.port) => {
      const c = new Client(`127.0.0.1:${port}`, channelCredentials(source).credentials) as unknown as EchoClient;
      cleanups.push(() => c.close());
      return c;
    };

    // a client of domain-a.org, connected before the bundle comes
    const local = dial(new StaticSource(contextOf(caA.issue('spiffe://domain-a.org/other'), caA)));
    expect(await who(local)).toBe('spiffe://domain-a.org/other');
    const states: grpc.connectivityState[] = [];
    let watching = true;
    cleanups.push(() => {
      watching = false;
    });
    const watch = (ch: ReturnType<EchoClient['getChannel']>, from: grpc.connectivityState): void =>
      ch.watchConnectivityState(from, Infinity, () => {
        if (!watching) return;
        const now = ch.getConnectivityState(false);
        states.push(now);
        watch(ch, now);
      });
    watch(local.getChannel(), local.getChannel().getConnectivityState(false));

    // a client of domain-b.org (which trusts domain-a.org) is refused until the bundle is fetched
    const bClient = () => dial(new StaticSource(contextOf(caB.issue('spiffe://domain-b.org/nsc'), caB, caA)));
    await expect(who(bClient())).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    expect(aSource.federation()[0]!.state).toBe('pending');
    release();
    await aSource.refreshAll();
    expect(aSource.federation()[0]!.state).toBe('ok');
    expect(await who(bClient())).toBe('spiffe://domain-b.org/nsc');

    // host a dials a domain-b.org server: trusted by the fetched bundle
    const bServer = new grpc.Server();
    bServer.addService(SERVICE, { Who: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from(peerFromCall(call)?.id ?? '')) });
    const bListener = await listenMtls(bServer, '127.0.0.1:0', new StaticSource(contextOf(caB.issue('spiffe://domain-b.org/host-b'), caB, caA)));
    cleanups.push(() => bListener.close());
    expect(await who(dial(aSource, bListener.port))).toBe('spiffe://domain-a.org/host-a');

    // the connection made before the update was not re-made
    expect(await who(local)).toBe('spiffe://domain-a.org/other');
    expect(states).toEqual([]);
  });
});
