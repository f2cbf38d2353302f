/**
 * mTLS with SVIDs: real grpc-js servers and channels on 127.0.0.1, real TLS handshakes.
 */
import { describe, it, expect, afterEach, vi } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { generateKey, LocalCa } from '../../../src/spire/ca';
import { DevX509Source } from '../../../src/spire/dev';
import { peerFromCall } from '../../../src/spire/peer';
import type { X509Source } from '../../../src/spire/source';
import { makeSvid } from '../../../src/spire/svid';
import { channelCredentials, SpiffeChannel } from '../../../src/spire/channel';
import { listenMtls } from '../../../src/spire/listen';
import { checkedPeerOf, serverCredentials } from '../../helpers/spire/server-credentials';
import { SpiffeTokenSource, TOKEN_HEADER, TOKEN_EXPIRES_HEADER, verifyEs256, audienceOf } from '../../../src/spire/token';
import { authorizeId } from '../../../src/spire/verify';
import { createCertificate, KU, OID } from '../../../src/spire/x509';
import { WorkloadX509Source } from '../../../src/spire/workload';
import { FakeWorkloadApi } from '../../helpers/spire/workload-api';
import { StaticSource, contextOf } from '../../helpers/spire/static-source';
import { waitFor } from '../../helpers/spire/wait';

const TD = 'example.org';
const SERVER_ID = 'spiffe://example.org/nsm/agent/server';
const CLIENT_ID = 'spiffe://example.org/nsm/agent/client';

const raw = (b: Buffer) => b;
const SERVICE: grpc.ServiceDefinition = {
  Who: {
    path: '/test.Echo/Who',
    requestStream: false,
    responseStream: false,
    requestSerialize: raw,
    requestDeserialize: raw,
    responseSerialize: raw,
    responseDeserialize: raw,
  },
};
const Client = grpc.makeGenericClientConstructor(SERVICE, 'Echo');

interface Seen {
  peer?: string;
  fingerprint?: string;
  token?: string;
  expires?: string;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

async function serve(source: X509Source, opts: Parameters<typeof serverCredentials>[1] = {}): Promise<{ port: number; seen: Seen[] }> {
  const server = new grpc.Server();
  const seen: Seen[] = [];
  server.addService(SERVICE, {
    Who: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const p = peerFromCall(call);
      const checked = checkedPeerOf(call.metadata); // what the server check accepted for this call
      if (checked?.id !== p?.id || checked?.certificate.fingerprint256 !== p?.certificate.fingerprint256) {
        cb({ code: grpc.status.INTERNAL, details: `checked peer ${checked?.id} is not the call's peer ${p?.id}` });
        return;
      }
      const s: Seen = {
        peer: p?.id,
        fingerprint: p?.certificate.fingerprint256,
        token: call.metadata.get(TOKEN_HEADER)[0] as string | undefined,
        expires: call.metadata.get(TOKEN_EXPIRES_HEADER)[0] as string | undefined,
      };
      seen.push(s);
      cb(null, Buffer.from(JSON.stringify(s)));
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', serverCredentials(source, opts), (err, p) => (err ? reject(err) : resolve(p))),
  );
  cleanups.push(() => new Promise<void>((r) => server.tryShutdown(() => r())));
  return { port, seen };
}

function dial(port: number, ch: SpiffeChannel): grpc.Client & { Who: Function } {
  const c = new Client(`127.0.0.1:${port}`, ch.credentials, ch.options) as unknown as grpc.Client & { Who: Function };
  cleanups.push(() => c.close());
  return c;
}

function who(c: grpc.Client & { Who: Function }, deadlineMs = 3000): Promise<Seen> {
  return new Promise((resolve, reject) =>
    c.Who(Buffer.alloc(0), { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null, res?: Buffer) =>
      err ? reject(err) : resolve(JSON.parse(String(res)) as Seen),
    ),
  );
}

function pair(ca: LocalCa, id: string, other: LocalCa[] = []): StaticSource {
  return new StaticSource(contextOf(ca.issue(id), ca, ...other));
}

describe('mTLS with SVIDs', () => {
  it('authenticates both sides; handlers see the client ID, the channel the server ID', async () => {
    const ca = LocalCa.create({ trustDomain: TD });
    const { port, seen } = await serve(pair(ca, SERVER_ID));
    const ch = channelCredentials(pair(ca, CLIENT_ID));
    const res = await who(dial(port, ch));
    expect(res.peer).toBe(CLIENT_ID);
    expect(seen).toHaveLength(1);
    expect(ch.peer()?.id).toBe(SERVER_ID);
  });

  it('fails the handshake with a certificate from an untrusted CA (same trust domain name)', async () => {
    const ca = LocalCa.create({ trustDomain: TD });
    const rogue = LocalCa.create({ trustDomain: TD });
    const { port, seen } = await serve(pair(ca, SERVER_ID));
    // client trusts the real CA but presents a rogue SVID
    const client = new StaticSource(contextOf(rogue.issue(CLIENT_ID), ca));
    await expect(who(dial(port, channelCredentials(client)))).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    // a client that does not trust the server's CA refuses it
    const picky = new StaticSource(contextOf(ca.issue(CLIENT_ID), [TD, rogue.bundle()]));
    await expect(who(dial(port, channelCredentials(picky)))).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    expect(seen).toHaveLength(0);
  });

  it('refuses a peer from another trust domain unless federated, and accepts it once federated', async () => {
    const a = LocalCa.create({ trustDomain: TD });
    const b = LocalCa.create({ trustDomain: 'other.org' });
    const foreign = 'spiffe://other.org/nsm/agent/x';
    const server = pair(a, SERVER_ID);
    const { port } = await serve(server);
    const client = pair(b, foreign, [a]); // the client trusts example.org
    await expect(who(dial(port, channelCredentials(client)))).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });

    server.set(contextOf(a.issue(SERVER_ID), a, b)); // federation configured: rotation of the bundle set
    const res = await who(dial(port, channelCredentials(client)));
    expect(res.peer).toBe(foreign);

    // federatesWith narrows what the source offers
    const strict = await serve(server, { federatesWith: [] });
    await expect(who(dial(strict.port, channelCredentials(client)))).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    const explicit = await serve(server, { federatesWith: ['spiffe://other.org'] });
    expect((await who(dial(explicit.port, channelCredentials(client)))).peer).toBe(foreign);
  });

  it('binds IDs to their own trust domain: a foreign CA cannot vouch for an ID in ours', async () => {
    const a = LocalCa.create({ trustDomain: TD });
    const b = LocalCa.create({ trustDomain: 'other.org' });
    const server = pair(a, SERVER_ID, [b]); // federated with other.org
    const { port, seen } = await serve(server);
    // other.org's CA signs a certificate claiming an example.org ID
    const keys = generateKey();
    const now = Date.now();
    const forged = createCertificate({
      subject: { C: 'US', O: 'SPIRE' }, publicKey: keys.publicKey, issuer: b.cert, signingKey: b.key,
      notBefore: now - 10_000, notAfter: now + 600_000, isCa: false,
      keyUsage: [KU.digitalSignature, KU.keyEncipherment, KU.keyAgreement], extKeyUsage: [OID.serverAuth, OID.clientAuth],
      uris: [CLIENT_ID],
    });
    const impostor = new StaticSource({ svids: [makeSvid([forged], keys.privateKey)], bundles: new Map([[TD, a.bundle()], ['other.org', b.bundle()]]) });
    const err = await who(dial(port, channelCredentials(impostor))).catch((e) => e);
    expect(err.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(err.details).toMatch(/does not chain to the bundle of its trust domain example.org/);
    expect(seen).toHaveLength(0);

    // and the client refuses such a server
    const { port: p2 } = await serve(impostor);
    const honest = pair(a, CLIENT_ID, [b]);
    const err2 = await who(dial(p2, channelCredentials(honest))).catch((e) => e);
    expect(err2.code).toBe(grpc.status.UNAVAILABLE);
    expect(err2.details).toMatch(/does not chain to the bundle of its trust domain example.org/);
  });

  it('rejects leaves with keyCertSign, two URI SANs, or no SPIFFE ID', async () => {
    const ca = LocalCa.create({ trustDomain: TD });
    const { port, seen } = await serve(pair(ca, SERVER_ID));
    const now = Date.now();
    const variants: [string, Partial<Parameters<typeof createCertificate>[0]>, RegExp][] = [
      ['keyCertSign', { keyUsage: [KU.digitalSignature, KU.keyCertSign] }, /keyCertSign/],
      ['two URIs', { uris: [CLIENT_ID, 'spiffe://example.org/other'] }, /2 URI SANs/],
      ['no URI', { uris: [], dnsNames: ['client.example.org'] }, /0 URI SANs/],
    ];
    for (const [name, change, msg] of variants) {
      const keys = generateKey();
      const cert = createCertificate({
        subject: { C: 'US', O: 'SPIRE' }, publicKey: keys.publicKey, issuer: ca.cert, signingKey: ca.key,
        notBefore: now - 10_000, notAfter: now + 600_000, isCa: false,
        keyUsage: [KU.digitalSignature], extKeyUsage: [OID.serverAuth, OID.clientAuth], uris: [CLIENT_ID], ...change,
      });
      // Bypass the source's own validation: a misbehaving peer, not our source.
      const src = new StaticSource(contextOf(ca.issue(CLIENT_ID), ca));
      src.set({ svids: [{ ...ca.issue(CLIENT_ID), chain: [cert], key: keys.privateKey }], bundles: new Map([[TD, ca.bundle()]]) });
      const err = await who(dial(port, channelCredentials(src))).catch((e) => e);
      expect(err.code, name).toBe(grpc.status.UNAUTHENTICATED);
      expect(err.details, name).toMatch(msg);
    }
    expect(seen).toHaveLength(0);
  });

  it('refuses an ID the authorizer does not allow with PERMISSION_DENIED', async () => {
    const ca = LocalCa.create({ trustDomain: TD });
    const { port } = await serve(pair(ca, SERVER_ID), { authorize: authorizeId(CLIENT_ID) });
    expect((await who(dial(port, channelCredentials(pair(ca, CLIENT_ID))))).peer).toBe(CLIENT_ID);
    const err = await who(dial(port, channelCredentials(pair(ca, 'spiffe://example.org/intruder')))).catch((e) => e);
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(err.details).toMatch(/spiffe:\/\/example.org\/intruder is not authorized/);
    // client side: pinning the server ID
    const wrong = channelCredentials(pair(ca, CLIENT_ID), { authorize: authorizeId('spiffe://example.org/someone-else') });
    await expect(who(dial(port, wrong))).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
  });

  it('presents rotated SVIDs on new handshakes without restarting; open connections keep working', async () => {
    const ca = LocalCa.create({ trustDomain: TD });
    const server = pair(ca, SERVER_ID);
    const client = pair(ca, CLIENT_ID);
    const { port } = await serve(server);
    const ch1 = channelCredentials(client);
    const c1 = dial(port, ch1);
    const first = await who(c1);
    const serverFp1 = ch1.peer()?.certificate.fingerprint256;

    server.set(contextOf(ca.issue(SERVER_ID), ca));
    client.set(contextOf(ca.issue(CLIENT_ID), ca));
    expect((await who(c1)).fingerprint).toBe(first.fingerprint); // same connection, old certificate

    const ch2 = channelCredentials(client);
    const second = await who(dial(port, ch2));
    expect(second.fingerprint).not.toBe(first.fingerprint);
    expect(second.fingerprint).toBe(client.svid().chain[0]?.fingerprint256);
    expect(ch2.peer()?.certificate.fingerprint256).not.toBe(serverFp1);
    expect(ch2.peer()?.certificate.fingerprint256).toBe(server.svid().chain[0]?.fingerprint256);
  });

  it('accepts peers across a root rotation (old and new root both in the bundle)', async () => {
    const api = await FakeWorkloadApi.start({ entries: [{ id: SERVER_ID, ttlMs: 60_000 }], noRotation: true });
    cleanups.push(() => api.close());
    const server = new WorkloadX509Source({ address: api.address, backoff: { initialMs: 20 } });
    cleanups.push(() => server.close());
    await server.ready();
    const { port } = await serve(server);
    const oldCa = api.issuer(TD);
    api.prepareRootRotation(TD);
    await waitFor(() => server.bundle(TD)?.length === 2);
    api.activateNewRoot(TD);
    await waitFor(() => server.svid().chain[0]?.checkIssued(oldCa.cert) === false);
    // a client still on the old root, trusting both
    const client = new StaticSource(contextOf(oldCa.issue(CLIENT_ID), [TD, api.bundle(TD)]));
    expect((await who(dial(port, channelCredentials(client)))).peer).toBe(CLIENT_ID);
    api.dropOldRoot(TD);
    await waitFor(() => server.bundle(TD)?.length === 1);
    await expect(who(dial(port, channelCredentials(client)))).rejects.toBeTruthy();
  });

  it('sends NSM tokens: aud = the authenticated server, signed with the client SVID key', async () => {
    const ca = LocalCa.create({ trustDomain: TD });
    const { port } = await serve(pair(ca, SERVER_ID));
    const client = pair(ca, CLIENT_ID);
    const tokens = new SpiffeTokenSource(client, 600_000);
    const res = await who(dial(port, channelCredentials(client, { tokens })));
    expect(res.token).toBeTruthy();
    const jwt = verifyEs256(res.token as string, client.svid().chain[0]?.publicKey as X509Certificate['publicKey']);
    expect(jwt.claims.sub).toBe(CLIENT_ID);
    expect(audienceOf(jwt.claims)).toEqual([SERVER_ID]);
    expect(res.expires).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  });

  it('drops connections until the source has an identity, then serves', async () => {
    const ca = LocalCa.create({ trustDomain: TD });
    const server = new StaticSource();
    const { port } = await serve(server);
    const c = dial(port, channelCredentials(pair(ca, CLIENT_ID)));
    await expect(who(c, 500)).rejects.toBeTruthy();
    server.set(contextOf(ca.issue(SERVER_ID), ca));
    const c2 = dial(port, channelCredentials(pair(ca, CLIENT_ID)));
    expect((await who(c2)).peer).toBe(CLIENT_ID);
  });

  it('the development identity refuses non-loopback listeners unless allowed', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nsm-devtls-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const dev = new DevX509Source({ caDir: dir, name: 'a' });
    cleanups.push(() => dev.close());
    await dev.ready();
    expect(() => serverCredentials(dev, { listen: '0.0.0.0:5001' })).toThrow(/loopback/);
    expect(() => serverCredentials(dev, { listen: '[::]:5001' })).toThrow(/loopback/);
    expect(() => serverCredentials(dev, { listen: '10.1.2.3:5001' })).toThrow(/allowNonLoopback/);
    const { port } = await serve(dev, { listen: '127.0.0.1:0' });
    const client = new DevX509Source({ caDir: dir, name: 'b' });
    cleanups.push(() => client.close());
    await client.ready();
    expect((await who(dial(port, channelCredentials(client)))).peer).toBe('spiffe://nsm.local/nsm-agent/b');
    const open = new DevX509Source({ caDir: dir, name: 'c', allowNonLoopback: true });
    cleanups.push(() => open.close());
    expect(() => serverCredentials(open, { listen: '0.0.0.0:5001' })).not.toThrow();
  });

  describe('listenMtls (authorization at the handshake, full chain)', () => {
    async function serveInjected(source: X509Source, opts: Parameters<typeof listenMtls>[3] = {}) {
      const server = new grpc.Server();
      const seen: Seen[] = [];
      server.addService(SERVICE, {
        Who: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
          const p = peerFromCall(call);
          seen.push({ peer: p?.id, fingerprint: p?.certificate.fingerprint256 });
          cb(null, Buffer.from(JSON.stringify({ peer: p?.id, fingerprint: p?.certificate.fingerprint256 })));
        },
      });
      const l = await listenMtls(server, '127.0.0.1:0', source, opts);
      cleanups.push(async () => {
        await l.close();
        server.forceShutdown();
      });
      return { port: l.port, seen };
    }

    it('accepts clients whose SVID is signed by an intermediate, and sees their ID', async () => {
      const root = LocalCa.create({ trustDomain: TD });
      const inter = root.intermediate();
      const { port } = await serveInjected(pair(root, SERVER_ID));
      const client = new StaticSource(contextOf(inter.issue(CLIENT_ID), root));
      expect((await who(dial(port, channelCredentials(client)))).peer).toBe(CLIENT_ID);
      // serverCredentials cannot see the intermediate and says so
      const { port: p2 } = await serve(pair(root, SERVER_ID));
      const err = await who(dial(p2, channelCredentials(client))).catch((e) => e);
      expect(err.code).toBe(grpc.status.UNAUTHENTICATED);
      expect(err.details).toMatch(/signed directly by a root/);
    });

    it('builds the peer certificate once per connection, not on every call', async () => {
      const ca = LocalCa.create({ trustDomain: TD });
      const { port, seen } = await serveInjected(pair(ca, SERVER_ID));
      const build = vi.spyOn(tls.TLSSocket.prototype, 'getPeerCertificate');
      const noReneg = vi.spyOn(tls.TLSSocket.prototype, 'disableRenegotiation');
      cleanups.push(() => (build.mockRestore(), noReneg.mockRestore()));
      const c = dial(port, channelCredentials(pair(ca, CLIENT_ID)));
      for (let i = 0; i < 3; i++) expect((await who(c)).peer).toBe(CLIENT_ID);
      // Server side: the handshake's verification (detailed) and the one kept for the calls.
      const isServer = (sock: unknown) => !!(sock as { _tlsOptions?: { isServer?: boolean } })._tlsOptions?.isServer;
      const plain = build.mock.calls.filter(([detailed], i) => !detailed && isServer(build.mock.contexts[i]));
      expect(plain).toHaveLength(1);
      expect(seen.map((s) => s.fingerprint)).toEqual(Array(3).fill(seen[0]!.fingerprint));
      // what keeping it relies on: the connection refuses renegotiation (TLS 1.2 has it)
      expect(noReneg.mock.contexts).toContain(build.mock.contexts.find(isServer));
    });

    it('refuses impostors and unauthorized IDs before any call', async () => {
      const a = LocalCa.create({ trustDomain: TD });
      const b = LocalCa.create({ trustDomain: 'other.org' });
      const { port, seen } = await serveInjected(pair(a, SERVER_ID, [b]), { authorize: (p) => (p.id === 'spiffe://example.org/banned' ? 'banned' : undefined) });
      const keys = generateKey();
      const now = Date.now();
      const forged = createCertificate({
        subject: { C: 'US', O: 'SPIRE' }, publicKey: keys.publicKey, issuer: b.cert, signingKey: b.key,
        notBefore: now - 10_000, notAfter: now + 600_000, isCa: false, keyUsage: [KU.digitalSignature], uris: [CLIENT_ID],
      });
      const impostor = new StaticSource({ svids: [makeSvid([forged], keys.privateKey)], bundles: new Map([[TD, a.bundle()]]) });
      await expect(who(dial(port, channelCredentials(impostor)))).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
      await expect(who(dial(port, channelCredentials(pair(a, 'spiffe://example.org/banned'))))).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
      expect(seen).toHaveLength(0);
      expect((await who(dial(port, channelCredentials(pair(a, CLIENT_ID))))).peer).toBe(CLIENT_ID);
    });

    it('presents the rotated SVID on new handshakes', async () => {
      const ca = LocalCa.create({ trustDomain: TD });
      const server = pair(ca, SERVER_ID);
      const { port } = await serveInjected(server);
      const ch1 = channelCredentials(pair(ca, CLIENT_ID));
      await who(dial(port, ch1));
      server.set(contextOf(ca.issue(SERVER_ID), ca));
      const ch2 = channelCredentials(pair(ca, CLIENT_ID));
      await who(dial(port, ch2));
      expect(ch2.peer()?.certificate.fingerprint256).not.toBe(ch1.peer()?.certificate.fingerprint256);
      expect(ch2.peer()?.certificate.fingerprint256).toBe(server.svid().chain[0]?.fingerprint256);
    });

    it('checks the listen address against the development identity', async () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'nsm-devtls-'));
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      const dev = new DevX509Source({ caDir: dir, name: 'a' });
      cleanups.push(() => dev.close());
      await dev.ready();
      await expect(listenMtls(new grpc.Server(), '0.0.0.0:0', dev)).rejects.toThrow(/loopback/);
    });
  });
});
