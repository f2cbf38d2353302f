/**
 * The Workload API client and its X509Source against the test double over a real unix socket.
 */
import { describe, it, expect, afterEach } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { AgentError } from '../../../src/core/errors';
import { WorkloadApiClient, WorkloadX509Source, workloadServiceDefinition, ENDPOINT_ENV } from '../../../src/spire/workload';
import { FakeWorkloadApi } from '../../helpers/spire/workload-api';
import { nextEvent, sleep, waitFor } from '../../helpers/spire/wait';
import type { X509Context } from '../../../src/spire/svid';

const ID = 'spiffe://example.org/nsm/agent/host-a';
const FAST = { initialMs: 20, maxMs: 200 };

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

async function fake(opts: Parameters<typeof FakeWorkloadApi.start>[0] = {}): Promise<FakeWorkloadApi> {
  const api = await FakeWorkloadApi.start({ entries: [{ id: ID, ttlMs: 60_000 }], ...opts });
  cleanups.push(() => api.close());
  return api;
}

function source(address: string, extra: Partial<ConstructorParameters<typeof WorkloadX509Source>[0]> = {}): WorkloadX509Source {
  const s = new WorkloadX509Source({ address, backoff: FAST, ...extra });
  cleanups.push(() => s.close());
  return s;
}

describe('Workload API client', () => {
  it('fetches the SVID with the security header, on both unix: spellings', async () => {
    const api = await fake();
    for (const address of [api.address, `unix:${api.socketPath}`]) {
      const s = source(address);
      const ctx = await s.ready();
      expect(s.svid().id).toBe(ID);
      expect(s.svid().chain[0]?.fingerprint256).toBe(api.current(ID)?.chain[0]?.fingerprint256);
      expect(ctx.bundles.get('example.org')?.[0]?.fingerprint256).toBe(api.bundle('example.org')[0]?.fingerprint256);
    }
    expect(api.calls.length).toBeGreaterThanOrEqual(2);
    for (const c of api.calls) expect(c.header).toEqual(['true']);
  });

  it('uses SPIFFE_ENDPOINT_SOCKET when no address is configured', async () => {
    const api = await fake();
    const saved = process.env[ENDPOINT_ENV];
    process.env[ENDPOINT_ENV] = api.address;
    cleanups.push(() => {
      if (saved === undefined) delete process.env[ENDPOINT_ENV];
      else process.env[ENDPOINT_ENV] = saved;
    });
    const client = new WorkloadApiClient();
    cleanups.push(() => client.close());
    expect((await client.fetchX509Context()).svids[0]?.id).toBe(ID);
  });

  it('the double refuses calls without the header like SPIRE', async () => {
    const api = await fake();
    const Client = grpc.makeGenericClientConstructor(workloadServiceDefinition(), 'SpiffeWorkloadAPI');
    const raw = new Client(api.address, grpc.credentials.createInsecure()) as grpc.Client & Record<string, (...a: unknown[]) => grpc.ClientReadableStream<unknown>>;
    cleanups.push(() => raw.close());
    for (const values of [[], ['false'], ['true', 'true']]) {
      const md = new grpc.Metadata();
      for (const v of values) md.add('workload.spiffe.io', v);
      const call = raw['FetchX509SVID']?.({}, md) as grpc.ClientReadableStream<unknown>;
      const st = await new Promise<grpc.StatusObject>((resolve) => {
        call.on('error', () => {});
        call.on('status', resolve);
      });
      expect(st.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(st.details).toBe('security header missing from request');
    }
  });

  it('the double serves the JWT profile like SPIRE', async () => {
    const api = await fake();
    const Client = grpc.makeGenericClientConstructor(workloadServiceDefinition(), 'SpiffeWorkloadAPI');
    const raw = new Client(api.address, grpc.credentials.createInsecure()) as grpc.Client & Record<string, Function>;
    cleanups.push(() => raw.close());
    const md = () => {
      const m = new grpc.Metadata();
      m.set('workload.spiffe.io', 'true');
      return m;
    };
    const unary = (method: string, req: object) =>
      new Promise<any>((resolve, reject) => raw[method]!(req, md(), (err: grpc.ServiceError | null, res: unknown) => (err ? reject(err) : resolve(res))));
    await expect(unary('FetchJWTSVID', { audience: [] })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'audience must be specified' });
    const { svids } = await unary('FetchJWTSVID', { audience: ['spiffe://example.org/db'] });
    expect(svids[0].spiffe_id).toBe(ID);
    const header = JSON.parse(Buffer.from(svids[0].svid.split('.')[0], 'base64url').toString());
    expect(header).toMatchObject({ alg: 'ES256', typ: 'JWT' });
    expect(header.kid).toBeTruthy();
    const ok = await unary('ValidateJWTSVID', { audience: 'spiffe://example.org/db', svid: svids[0].svid });
    expect(ok.spiffe_id).toBe(ID);
    // protobufjs names the well-known Struct/Value fields in camelCase, whatever keepCase says
    expect(ok.claims.fields.aud.listValue.values[0].stringValue).toBe('spiffe://example.org/db');
    expect(ok.claims.fields.sub.stringValue).toBe(ID);
    await expect(unary('ValidateJWTSVID', { audience: 'spiffe://example.org/other', svid: svids[0].svid })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    const bundles = await new Promise<any>((resolve) => {
      const call = raw['FetchJWTBundles']!({}, md()) as grpc.ClientReadableStream<any>;
      call.on('error', () => {});
      call.on('data', (m: any) => {
        resolve(m);
        call.cancel();
      });
    });
    const jwks = JSON.parse(String(bundles.bundles['spiffe://example.org']));
    expect(jwks.keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', kid: header.kid });
    expect(jwks.keys[0].use).toBeUndefined();
  });

  it('takes every pushed rotation, with an update event, and rotates by itself at half-life', async () => {
    const api = await fake({ entries: [{ id: ID, ttlMs: 1200 }] });
    const s = source(api.address);
    await s.ready();
    const first = s.svid().chain[0]?.fingerprint256;
    const updated = nextEvent<X509Context>(s, 'update', 3000);
    const ctx = await updated; // pushed by the double at ~600 ms
    expect(ctx.svids[0]?.chain[0]?.fingerprint256).not.toBe(first);
    expect(s.svid().chain[0]?.fingerprint256).toBe(ctx.svids[0]?.chain[0]?.fingerprint256);
    api.rotate();
    const again = await nextEvent<X509Context>(s, 'update');
    expect(again.svids[0]?.chain[0]?.fingerprint256).toBe(api.current(ID)?.chain[0]?.fingerprint256);
  });

  it('retries PERMISSION_DENIED with back-off until an identity appears; revocation stops presenting it', async () => {
    const api = await fake({ entries: [] });
    const s = source(api.address);
    const problems: AgentError[] = [];
    s.on('problem', (e) => problems.push(e));
    await waitFor(() => api.calls.length >= 3, 3000, 'retries');
    expect(() => s.svid()).toThrow(/no SPIFFE identity/);
    expect(problems.some((p) => p.code === 'PERMISSION_DENIED')).toBe(true);
    api.setEntries([{ id: ID, ttlMs: 60_000 }]);
    await s.ready();
    expect(s.svid().id).toBe(ID);

    api.revoke();
    await waitFor(() => s.current() === undefined, 3000, 'revocation');
    expect(() => s.svid()).toThrow(/UNAVAILABLE|no SPIFFE identity/);
    api.setEntries([{ id: ID, ttlMs: 60_000 }]);
    await waitFor(() => s.current(), 3000, 'identity after re-grant');
  });

  it('backs off exponentially between attempts', async () => {
    const api = await fake();
    api.failNext(4, grpc.status.UNAVAILABLE);
    const times: number[] = [];
    const client = new WorkloadApiClient({ address: api.address, backoff: { initialMs: 40, maxMs: 1000 } });
    cleanups.push(() => client.close());
    const ac = new AbortController();
    const got = new Promise<X509Context>((resolve) => {
      void client.watchX509Context({ update: (c) => resolve(c), problem: (_e, retrying) => retrying && times.push(performance.now()) }, ac.signal);
    });
    await got;
    ac.abort();
    expect(times.length).toBe(4);
    const gaps = times.slice(1).map((t, i) => t - (times[i] as number));
    // waits of ~40, 80, 160, 320 ms (±20 %): each gap clearly longer than the one before
    expect(gaps[1] as number).toBeGreaterThan((gaps[0] as number) * 1.3);
    expect(gaps[2] as number).toBeGreaterThan((gaps[1] as number) * 1.3);
  });

  it('does not retry INVALID_ARGUMENT or UNIMPLEMENTED: ready() fails with the reason', async () => {
    for (const code of [grpc.status.INVALID_ARGUMENT, grpc.status.UNIMPLEMENTED]) {
      const api = await fake();
      api.failNext(1, code, 'nope');
      const s = source(api.address);
      await expect(s.ready()).rejects.toThrow(/nope/);
      await sleep(150);
      expect(api.calls.length).toBe(1);
    }
  });

  it('reopens a stream the server ended cleanly, keeping the state', async () => {
    const api = await fake();
    const s = source(api.address);
    await s.ready();
    const before = api.calls.length;
    api.breakStreams(grpc.status.OK);
    await waitFor(() => api.calls.length > before, 3000, 'reconnect');
    expect(s.svid().id).toBe(ID);
    api.breakStreams(grpc.status.INTERNAL);
    await waitFor(() => api.calls.length > before + 1, 3000, 'reconnect after INTERNAL');
  });

  it('discards malformed messages and keeps the last good state', async () => {
    const api = await fake();
    const s = source(api.address);
    await s.ready();
    const fp = s.svid().chain[0]?.fingerprint256;
    for (const kind of ['no-svids', 'no-key', 'bad-chain'] as const) {
      const problem = nextEvent<AgentError>(s, 'problem');
      api.pushMalformed(kind);
      expect((await problem).code).toBe('INVALID_ARGUMENT');
      expect(s.svid().chain[0]?.fingerprint256).toBe(fp);
    }
  });

  it('refuses an SVID whose key cannot sign NSM tokens (wrong key type), keeping the last good one', async () => {
    const api = await fake();
    const s = source(api.address);
    await s.ready();
    const fp = s.svid().chain[0]?.fingerprint256;
    const problem = nextEvent<AgentError>(s, 'problem');
    api.setEntries([{ id: ID, ttlMs: 60_000, keyType: 'rsa-2048' }]);
    expect((await problem).message).toMatch(/ES256: the SVID key of spiffe:\/\/example.org\/nsm\/agent\/host-a is rsa/);
    expect(s.svid().chain[0]?.fingerprint256).toBe(fp);
  });

  it('recovers by itself after the Workload API restarts', async () => {
    const api = await fake();
    const s = source(api.address);
    await s.ready();
    const fp = s.svid().chain[0]?.fingerprint256;
    await api.stop();
    await sleep(100);
    expect(s.svid().chain[0]?.fingerprint256).toBe(fp); // last good identity kept meanwhile
    await api.restart();
    await waitFor(() => s.svid().chain[0]?.fingerprint256 !== fp, 5000, 'new SVID after restart');
  });

  it('delivers federated bundles only when federated, and drops them when the entry stops federating', async () => {
    const api = await fake({ trustDomains: ['example.org', 'other.org'] });
    const s = source(api.address);
    await s.ready();
    expect([...(s.current()?.bundles.keys() ?? [])]).toEqual(['example.org']);
    api.setEntries([{ id: ID, ttlMs: 60_000, federatesWith: ['other.org'] }]);
    await waitFor(() => s.bundle('other.org'), 3000, 'federated bundle');
    api.setEntries([{ id: ID, ttlMs: 60_000 }]);
    await waitFor(() => !s.bundle('other.org'), 3000, 'federated bundle removed');
  });

  it('picks the SVID by hint; the first of duplicate hints wins', async () => {
    const other = 'spiffe://example.org/nsm/agent/other';
    const api = await fake({
      entries: [
        { id: ID, ttlMs: 60_000, hint: 'internal' },
        { id: other, ttlMs: 60_000, hint: 'external' },
        { id: 'spiffe://example.org/dup', ttlMs: 60_000, hint: 'external' },
      ],
    });
    const s = source(api.address, { hint: 'external' });
    const ctx = await s.ready();
    expect(ctx.svids.map((x) => x.id)).toEqual([ID, other]);
    expect(s.svid().id).toBe(other);
  });

  it('streams X.509 bundles, de-duplicated by the server', async () => {
    const api = await fake({ trustDomains: ['example.org', 'other.org'] });
    const client = new WorkloadApiClient({ address: api.address, backoff: FAST });
    cleanups.push(() => client.close());
    const first = await client.fetchX509Bundles();
    expect([...first.keys()].sort()).toEqual(['example.org', 'other.org']);
    const seen: Map<string, unknown>[] = [];
    const ac = new AbortController();
    const done = client.watchX509Bundles({ update: (b) => seen.push(b) }, ac.signal);
    await waitFor(() => seen.length === 1);
    api.rotate(); // SVIDs change, bundles do not: nothing sent
    await sleep(100);
    expect(seen.length).toBe(1);
    api.prepareRootRotation('other.org');
    await waitFor(() => seen.length === 2);
    expect((seen[1]?.get('other.org') as unknown[]).length).toBe(2);
    ac.abort();
    await done;
  });

  it('rejects bad endpoint addresses with a clear message', () => {
    for (const [addr, msg] of [
      [undefined, /not configured/],
      ['unix://host/tmp/x.sock', /authority/],
      ['unix:relative.sock', /absolute/],
      ['tcp://localhost:80', /IP address/],
      ['tcp://127.0.0.1', /port/],
      ['http://127.0.0.1:80', /scheme/],
      ['unix:///tmp/x.sock?a=b', /query/],
    ] as const) {
      const saved = process.env[ENDPOINT_ENV];
      delete process.env[ENDPOINT_ENV];
      try {
        expect(() => new WorkloadApiClient({ address: addr })).toThrow(msg);
      } finally {
        if (saved !== undefined) process.env[ENDPOINT_ENV] = saved;
      }
    }
  });

  it('closes without dangling handles, also while waiting to retry', async () => {
    const api = await fake({ entries: [] });
    const baseline = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap').length;
    const s = new WorkloadX509Source({ address: api.address, backoff: { initialMs: 5000, maxMs: 5000 } });
    const pending = s.ready();
    await waitFor(() => api.calls.length >= 1);
    await s.close();
    await expect(pending).rejects.toThrow(/closed/);
    await waitFor(() => process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap').length <= baseline, 3000, 'handles released');
  });
});

describe('identity from agent.yaml settings', () => {
  it('creates the configured source and explains why none arrives in time', async () => {
    const { createX509Source, waitForIdentity } = await import('../../../src/spire');
    const api = await fake({ entries: [] });
    const dev = { caDir: '/nonexistent', trustDomain: 'nsm.local', allowNonLoopback: false };
    const s = createX509Source({ source: 'spiffe', socket: api.address, dev }, { name: 'a' });
    cleanups.push(() => s.close());
    expect(s.kind).toBe('spiffe');
    await expect(waitForIdentity(s, 300)).rejects.toThrow(/no SPIFFE identity \(spiffe\) after 0.3 s: .*no identity issued/);
    api.setEntries([{ id: ID, ttlMs: 60_000 }]);
    expect((await waitForIdentity(s, 5000)).svids[0]?.id).toBe(ID);

    const missing = createX509Source({ source: 'spiffe', socket: 'unix:///nonexistent/api.sock', dev }, { name: 'a' });
    cleanups.push(() => missing.close());
    await expect(waitForIdentity(missing, 300)).rejects.toThrow(/after 0.3 s: .*(No such file|ENOENT|UNAVAILABLE|connect)/i);
  });
});
