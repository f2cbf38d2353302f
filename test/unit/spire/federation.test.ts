import { describe, it, expect, afterEach } from 'vitest';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { FakeClock } from '../../../src/core/clock';
import { LocalCa } from '../../../src/spire/ca';
import { serveBundleEndpoint } from '../../../src/spire/bundle-endpoint';
import { FederatedX509Source, fetchSpiffeBundle, refreshDelayMs, retryDelayMs } from '../../../src/spire/federation';
import { serializeSpiffeBundle } from '../../../src/spire/jwks';
import { tlsMaterial } from '../../../src/spire/mtls';
import type { X509Svid } from '../../../src/spire/svid';
import { toPem } from '../../../src/spire/x509';
import { contextOf, StaticSource } from '../../helpers/spire/static-source';

describe('refresh scheduling', () => {
  const bounds = { minMs: 5_000, maxMs: 3_600_000 };
  it('a tenth before the refresh hint, within the bounds; 5 min without a hint', () => {
    expect(refreshDelayMs(300, bounds)).toBe(270_000);
    expect(refreshDelayMs(undefined, bounds)).toBe(270_000);
    expect(refreshDelayMs(60, bounds)).toBe(54_000);
    expect(refreshDelayMs(1, bounds)).toBe(5_000);
    expect(refreshDelayMs(0, bounds)).toBe(5_000);
    expect(refreshDelayMs(86_400, bounds)).toBe(3_600_000);
  });
  it('after failures: from the minimum, doubling, never past the normal interval or the maximum', () => {
    expect([1, 2, 3, 4].map((n) => retryDelayMs(n, 270_000, bounds))).toEqual([5_000, 10_000, 20_000, 40_000]);
    expect(retryDelayMs(10, 270_000, bounds)).toBe(270_000);
    expect(retryDelayMs(100, 270_000, bounds)).toBe(270_000);
    expect(retryDelayMs(3, 270_000, { minMs: 5_000, maxMs: 12_000 })).toBe(12_000);
  });
});

describe('FederatedX509Source with a bundle endpoint', () => {
  const caA = LocalCa.create({ trustDomain: 'domain-a.org' });
  const caB = LocalCa.create({ trustDomain: 'domain-b.org' });
  const caB2 = LocalCa.create({ trustDomain: 'domain-b.org' });
  const caC = LocalCa.create({ trustDomain: 'domain-c.org' });
  const svidA = caA.issue('spiffe://domain-a.org/host-a');
  const svidB = caB.issue('spiffe://domain-b.org/host-b');
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  /** host-b's agent: its source and its bundle endpoint on loopback. */
  async function hostB(refreshHintS = 60) {
    const source = new StaticSource(contextOf(svidB, caB));
    const server = await serveBundleEndpoint(source, '127.0.0.1:0', { refreshHintS });
    cleanups.push(() => server.close(), () => source.close());
    return { source, server, url: `https://127.0.0.1:${server.port}/bundle` };
  }

  /** A raw HTTPS server presenting `svid` and answering `status`/`body`. */
  async function rawServer(svid: X509Svid, body: string, status = 200): Promise<{ url: string; close: () => Promise<void> }> {
    const srv = https.createServer({ cert: toPem(svid.chain), key: svid.key.export({ type: 'pkcs8', format: 'pem' }) as string }, (_req, res) => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(body);
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    let closed = false;
    const close = async () => {
      if (closed) return;
      closed = true;
      srv.closeAllConnections();
      await new Promise<void>((r) => srv.close(() => r()));
    };
    cleanups.push(close);
    return { url: `https://127.0.0.1:${(srv.address() as AddressInfo).port}/`, close };
  }

  /** host-a's source federating with domain-b.org at `url`, bootstrapped from `bootstrap` (PEM). */
  function hostA(url: string, opts: { endpointId?: string; bootstrap?: () => string; clock?: FakeClock } = {}) {
    const base = new StaticSource(contextOf(svidA, caA));
    const clock = opts.clock ?? new FakeClock(Date.now());
    const bootstrap = opts.bootstrap ?? (() => toPem(caB.bundle()));
    const source = new FederatedX509Source(
      base,
      [{ trustDomain: 'domain-b.org', bundleEndpoint: url, endpointId: opts.endpointId ?? 'spiffe://domain-b.org/host-b', bundle: '/bootstrap.pem', minRefreshMs: 1_000, maxRefreshMs: 600_000 }],
      { clock, readFile: async () => Buffer.from(bootstrap()) },
    );
    cleanups.push(() => source.close());
    return { source, clock };
  }

  it('the endpoint serves the own bundle as a SPIFFE bundle over HTTPS with the SVID', async () => {
    const b = await hostB(60);
    const got = await fetchSpiffeBundle(b.url, { trustDomain: 'domain-b.org', endpointId: 'spiffe://domain-b.org/host-b', roots: caB.bundle() });
    expect(got.x509Authorities.map((c) => c.fingerprint256)).toEqual([caB.cert.fingerprint256]);
    expect(got.refreshHintS).toBe(60);
    expect(got.sequence).toBeGreaterThan(1_700_000_000);
  });

  it('fetches, lays the bundle over the source, announces it and schedules the next fetch before the hint', async () => {
    const b = await hostB(60);
    const { source, clock } = hostA(b.url);
    await source.ready();
    expect(source.bundle('domain-b.org')).toBeUndefined();
    expect(source.federation()[0]!.state).toBe('pending');
    const updates: number[] = [];
    source.on('update', (ctx) => updates.push(ctx.bundles.size));
    await source.refreshAll();
    expect(source.bundle('domain-b.org')?.map((c) => c.fingerprint256)).toEqual([caB.cert.fingerprint256]);
    expect(source.bundle('domain-a.org')).toBeDefined();
    expect(updates).toEqual([2]);
    const st = source.federation()[0]!;
    expect(st).toMatchObject({ trustDomain: 'domain-b.org', url: b.url, state: 'ok', authorities: 1 });
    expect(st.nextRefresh).toBe(clock.now() + 54_000);
    // mTLS material now trusts domain-b.org's CA
    expect(tlsMaterial(source)!.ca).toContain(caB.cert.toString().trim().split('\n')[1]);
    // an unchanged bundle announces nothing
    await source.refreshAll();
    expect(updates).toEqual([2]);
  });

  it('a rotated bundle is picked up; later fetches authenticate with the fetched bundle, not the bootstrap', async () => {
    const b = await hostB(60);
    let bootstrap = toPem(caB.bundle());
    const { source } = hostA(b.url, { bootstrap: () => bootstrap });
    await source.ready();
    await source.refreshAll();
    const seq1 = source.federation()[0]!.sequence!;
    b.source.set(contextOf(svidB, ['domain-b.org', [caB.cert, caB2.cert]]));
    bootstrap = toPem(caC.bundle()); // a wrong bootstrap would fail, were it still used
    await source.refreshAll();
    expect(source.federation()[0]).toMatchObject({ state: 'ok', authorities: 2, sequence: seq1 + 1 });
    expect(source.bundle('domain-b.org')).toHaveLength(2);
  });

  it('an endpoint whose SVID is not endpointId: BUNDLE_ENDPOINT_UNTRUSTED, nothing applied', async () => {
    const b = await hostB();
    const { source } = hostA(b.url, { endpointId: 'spiffe://domain-b.org/bundle-server' });
    await source.ready();
    await source.refreshAll();
    expect(source.bundle('domain-b.org')).toBeUndefined();
    const st = source.federation()[0]!;
    expect(st.state).toBe('failing');
    expect(st.lastError?.code).toBe('BUNDLE_ENDPOINT_UNTRUSTED');
    expect(st.lastError?.message).toContain(`trust domain domain-b.org: bundle endpoint ${b.url}`);
    expect(st.lastError?.message).toContain('is the SVID of spiffe://domain-b.org/host-b, not of spiffe://domain-b.org/bundle-server');
  });

  it('an endpoint whose SVID does not chain to the bundle held for its trust domain: BUNDLE_ENDPOINT_UNTRUSTED', async () => {
    const b = await hostB();
    const { source } = hostA(b.url, { bootstrap: () => toPem(caB2.bundle()) });
    await source.ready();
    await source.refreshAll();
    expect(source.bundle('domain-b.org')).toBeUndefined();
    expect(source.federation()[0]!.lastError?.code).toBe('BUNDLE_ENDPOINT_UNTRUSTED');
    expect(source.federation()[0]!.lastError?.message).toContain('does not chain to the bundle of its trust domain domain-b.org');
  });

  it('refusals keep the last good bundle: another trust domain, malformed JSON, HTTP 500, unreachable', async () => {
    const good = serializeSpiffeBundle({ x509Authorities: [caB.cert], refreshHintS: 60 });
    const cases: [string, string, number, string, RegExp][] = [
      ['other', serializeSpiffeBundle({ x509Authorities: [caC.cert] }), 200, 'BUNDLE_WRONG_TRUST_DOMAIN', /a bundle of trust domain domain-c.org, not of domain-b.org/],
      ['malformed', '{"keys": [', 200, 'BUNDLE_INVALID', /malformed JSON/],
      ['no keys', '{}', 200, 'BUNDLE_INVALID', /no "keys" array/],
      ['500', 'oops', 500, 'BUNDLE_ENDPOINT_UNAVAILABLE', /answered HTTP 500/],
      ['302', '', 302, 'BUNDLE_ENDPOINT_UNAVAILABLE', /answered HTTP 302 \(redirects are not followed\)/],
    ];
    for (const [name, body, status, code, why] of cases) {
      // the same URL answers good first, then the bad answer
      let answer = { body: good, status: 200 };
      const srv = https.createServer({ cert: toPem(svidB.chain), key: svidB.key.export({ type: 'pkcs8', format: 'pem' }) as string }, (_req, res) => {
        res.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.body);
      });
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
      cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
      const url = `https://127.0.0.1:${(srv.address() as AddressInfo).port}/b`;
      const { source, clock } = hostA(url);
      await source.ready();
      await source.refreshAll();
      expect(source.federation()[0]!.state, name).toBe('ok');
      answer = { body, status };
      await source.refreshAll();
      const st = source.federation()[0]!;
      expect(st.state, name).toBe('failing');
      expect(st.lastError?.code, name).toBe(code);
      expect(st.lastError?.message, name).toMatch(why);
      expect(st.lastError?.message).toContain(`trust domain domain-b.org: bundle endpoint ${url}`);
      // the last good bundle stays in use; the retry comes at the minimum
      expect(source.bundle('domain-b.org')?.map((c) => c.fingerprint256), name).toEqual([caB.cert.fingerprint256]);
      expect(st.nextRefresh).toBe(clock.now() + 1_000);
    }
    // unreachable: the server is gone
    const raw = await rawServer(svidB, good);
    const { source } = hostA(raw.url);
    await source.ready();
    await source.refreshAll();
    expect(source.federation()[0]!.state).toBe('ok');
    await raw.close();
    await source.refreshAll();
    const st = source.federation()[0]!;
    expect(st.lastError?.code).toBe('BUNDLE_ENDPOINT_UNAVAILABLE');
    expect(st.lastError?.message).toMatch(/cannot fetch: .*ECONNREFUSED/);
    expect(source.bundle('domain-b.org')).toHaveLength(1);
  });

  it('the refresh timer fetches again and recovers after a failure', async () => {
    const b = await hostB(60);
    const { source, clock } = hostA(b.url);
    await source.ready();
    await source.refreshAll();
    b.source.set(contextOf(svidB, ['domain-b.org', [caB.cert, caB2.cert]]));
    const updated = new Promise<void>((r) => source.once('update', () => r()));
    clock.advance(54_000); // the scheduled fetch starts
    await updated;
    expect(source.bundle('domain-b.org')).toHaveLength(2);
  });

  it('fetching starts with the identity source\'s first state', async () => {
    const b = await hostB();
    const base = new StaticSource();
    const source = new FederatedX509Source(
      base,
      [{ trustDomain: 'domain-b.org', bundleEndpoint: b.url, endpointId: 'spiffe://domain-b.org/host-b', bundle: '/b.pem' }],
      { clock: new FakeClock(Date.now()), readFile: async () => Buffer.from(toPem(caB.bundle())) },
    );
    cleanups.push(() => source.close());
    expect(source.current()).toBeUndefined();
    expect(source.federation()[0]!.state).toBe('pending');
    const fetched = new Promise<void>((r) => source.on('update', (ctx) => ctx.bundles.has('domain-b.org') && r()));
    base.set(contextOf(svidA, caA));
    await fetched;
    expect(source.federation()[0]!.state).toBe('ok');
  });

  it('without a bootstrap file or a held bundle for the endpoint trust domain: refused, naming what to give', async () => {
    const b = await hostB();
    const base = new StaticSource(contextOf(svidA, caA));
    const source = new FederatedX509Source(base, [{ trustDomain: 'domain-b.org', bundleEndpoint: b.url, endpointId: 'spiffe://domain-b.org/host-b' }], { clock: new FakeClock(Date.now()) });
    cleanups.push(() => source.close());
    await source.refreshAll();
    expect(source.federation()[0]!.lastError).toMatchObject({ code: 'BUNDLE_ENDPOINT_UNTRUSTED' });
    expect(source.federation()[0]!.lastError?.message).toContain('no bundle of trust domain domain-b.org to authenticate spiffe://domain-b.org/host-b');
  });
});
