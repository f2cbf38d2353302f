/**
 * vl3-ipam interop: the agent's vl3-ipam listener (Listeners.vl3ipam, mutual TLS or a unix
 * socket) driven by a client built from UPSTREAM's own ipam.proto (test/fixtures/upstream),
 * and our PrefixLease against the same listener and against a tiny server built from that
 * proto (test/helpers/upstream-ipam.ts).
 */
import { describe, it, expect, afterEach } from 'vitest';
import path from 'node:path';
import os from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { Listeners } from '../../../src/agent/listeners';
import { api } from '../../../src/api';
import { createLogger, silentLogger, type Logger } from '../../../src/core/log';
import { LocalCa } from '../../../src/spire/ca';
import { channelCredentials } from '../../../src/spire/channel';
import { PrefixLease, type PrefixLeaseOptions } from '../../../src/vl3/ipam/lease';
import type { Vl3IpamServer } from '../../../src/vl3/ipam/server';
import { StaticSource, contextOf } from '../../helpers/spire/static-source';
import { sleep, waitFor } from '../../helpers/spire/wait';
import { UpstreamIpam, UpstreamStream, upstreamIpamClient, type UpstreamIpamClient, type UpstreamRequest, type UpstreamResponse } from '../../helpers/upstream-ipam';

const TD = 'example.org';
const AGENT_ID = 'spiffe://example.org/nsm/agent/ipam-host';
const NSE_ID = 'spiffe://example.org/nsm/agent/vl3-host';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

type Request = UpstreamRequest;
type Response = UpstreamResponse;

/** An upstream stream, cancelled after the test. */
class Stream extends UpstreamStream {
  constructor(client: UpstreamIpamClient) {
    super(client);
    cleanups.push(() => this.cancel());
  }
}

function pki() {
  const ca = LocalCa.create({ trustDomain: TD });
  return { ca, agent: new StaticSource(contextOf(ca.issue(AGENT_ID), ca)), nse: new StaticSource(contextOf(ca.issue(NSE_ID), ca)) };
}

/** The agent's vl3-ipam listener, as Agent.start makes it. */
async function agentIpam(
  identity: StaticSource,
  cfg: { listen?: string; prefix: string; clientPrefixLength: number },
  log: Logger = silentLogger,
): Promise<{ url: string; ipam: Vl3IpamServer; stop: () => Promise<void> }> {
  const listeners = new Listeners(identity, log);
  const { server, url } = await listeners.vl3ipam({ listen: cfg.listen ?? '127.0.0.1:0', prefix: cfg.prefix, clientPrefixLength: cfg.clientPrefixLength }, []);
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await listeners.closeTcp();
    await listeners.shutdown();
  };
  cleanups.push(stop);
  return { url, ipam: server, stop };
}

/** An upstream-proto client of a tcp:// (mTLS with `source`) or unix:// URL. */
function upstreamClient(url: string, source?: StaticSource): UpstreamIpamClient {
  const c = upstreamIpamClient(url, source && channelCredentials(source).credentials);
  cleanups.push(() => c.close());
  return c;
}

describe('proto/ipam/ipam.proto', () => {
  it('is wire-identical with upstream\'s: same method path, messages decode both ways', () => {
    const ours = api().ipam.ipam.IPAM.service.ManagePrefixes;
    const theirs = UpstreamIpam.service['ManagePrefixes'] as grpc.MethodDefinition<UpstreamRequest, UpstreamResponse>;
    expect(ours.path).toBe('/ipam.IPAM/ManagePrefixes');
    expect(theirs.path).toBe(ours.path);
    expect([ours.requestStream, ours.responseStream]).toEqual([theirs.requestStream, theirs.responseStream]);
    for (const type of ['UNDEFINED', 'ALLOCATE', 'DELETE'] as const) {
      const wire = ours.requestSerialize({ type, prefix: '172.16.1.0/24', exclude_prefixes: ['10.0.0.0/8', '::/0'] });
      expect(theirs.requestDeserialize(wire)).toEqual({ type, prefix: '172.16.1.0/24', excludePrefixes: ['10.0.0.0/8', '::/0'] });
      const back = theirs.requestSerialize({ type, prefix: 'p', excludePrefixes: ['x'] });
      expect(ours.requestDeserialize(back)).toEqual({ type, prefix: 'p', exclude_prefixes: ['x'] });
    }
    const res = ours.responseSerialize({ prefix: '2001:db8::/112', exclude_prefixes: ['a'] });
    expect(theirs.responseDeserialize(res)).toEqual({ prefix: '2001:db8::/112', excludePrefixes: ['a'] });
    // field numbers: prefix is 2 and exclude_prefixes 3 in both messages (tag bytes 0x12, 0x1a)
    expect([...res.subarray(0, 1)]).toEqual([0x12]);
  });
});

describe('the agent\'s vl3-ipam server, to an upstream client over mutual TLS', () => {
  it('allocates /clientPrefixLength prefixes, several per stream, echoing exclude_prefixes', async () => {
    const { agent, nse } = pki();
    const { url, ipam } = await agentIpam(agent, { prefix: '172.16.0.0/16', clientPrefixLength: 24 });
    const s = new Stream(upstreamClient(url, nse));
    expect(await s.allocate()).toEqual({ prefix: '172.16.0.0/24', excludePrefixes: [] });
    expect(await s.allocate('', ['172.16.1.0/24', '10.0.0.0/8'])).toEqual({ prefix: '172.16.2.0/24', excludePrefixes: ['172.16.1.0/24', '10.0.0.0/8'] });
    expect(ipam.pool.inUse()).toEqual(['172.16.0.0/24', '172.16.2.0/24']);
    expect(ipam.streams).toBe(1);
  });

  it('gives a reconnecting endpoint its previous prefix back, and another stream a different one', async () => {
    const { agent, nse } = pki();
    const { url, ipam } = await agentIpam(agent, { prefix: '172.16.0.0/16', clientPrefixLength: 24 });
    const client = upstreamClient(url, nse);
    const a = new Stream(client);
    expect((await a.allocate('172.16.9.0/24')).prefix).toBe('172.16.9.0/24');
    const b = new Stream(client);
    expect((await b.allocate('172.16.9.0/24')).prefix).toBe('172.16.0.0/24'); // held by a
    a.cancel();
    await waitFor(() => ipam.pool.inUse().length === 1, 3000, 'a\'s prefix freed');
    const again = new Stream(client);
    expect((await again.allocate('172.16.9.0/24')).prefix).toBe('172.16.9.0/24');
  });

  it('frees every prefix of a stream when it ends (half-close or cancel)', async () => {
    const { agent, nse } = pki();
    const { url, ipam } = await agentIpam(agent, { prefix: '172.16.0.0/16', clientPrefixLength: 24 });
    const client = upstreamClient(url, nse);
    const a = new Stream(client);
    await a.allocate();
    await a.allocate();
    a.end();
    expect((await a.ended()).code).toBe(grpc.status.OK);
    expect(ipam.pool.inUse()).toEqual([]);
    const b = new Stream(client);
    expect((await b.allocate()).prefix).toBe('172.16.0.0/24');
    b.cancel();
    await waitFor(() => ipam.pool.inUse().length === 0 && ipam.streams === 0, 3000, 'b\'s prefix freed');
  });

  it('DELETE frees only a prefix of the same stream, and answers nothing', async () => {
    const { agent, nse } = pki();
    const { url, ipam } = await agentIpam(agent, { prefix: '172.16.0.0/16', clientPrefixLength: 24 });
    const client = upstreamClient(url, nse);
    const a = new Stream(client);
    const b = new Stream(client);
    const mine = (await a.allocate()).prefix;
    await b.allocate();
    b.send({ type: 'DELETE', prefix: mine });
    await b.allocate(); // the DELETE was handled before this
    expect(ipam.pool.inUse()).toContain(mine);
    a.send({ type: 'DELETE', prefix: mine });
    expect((await a.allocate('172.16.50.0/24')).prefix).toBe('172.16.50.0/24');
    expect(ipam.pool.inUse()).not.toContain(mine);
    expect(a.responses).toHaveLength(2);
    expect(a.status).toBeUndefined();
  });

  it('ends a stream that sends UNDEFINED with INVALID_ARGUMENT naming the field, freeing its prefixes', async () => {
    const { agent, nse } = pki();
    const { url, ipam } = await agentIpam(agent, { prefix: '172.16.0.0/16', clientPrefixLength: 24 });
    const s = new Stream(upstreamClient(url, nse));
    await s.allocate();
    s.send({ prefix: '172.16.3.0/24' }); // type left at its default, UNDEFINED
    const st = await s.ended();
    expect(st.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(st.details).toBe('vl3-ipam: PrefixRequest.type is UNDEFINED; want ALLOCATE or DELETE');
    await waitFor(() => ipam.pool.inUse().length === 0, 3000, 'prefixes freed');
  });

  it('ends a stream with RESOURCE_EXHAUSTED when the pool is full; a freed prefix serves the next', async () => {
    const { agent, nse } = pki();
    const { log, lines } = logs();
    const { url, ipam } = await agentIpam(agent, { prefix: '172.16.0.0/23', clientPrefixLength: 24 }, log);
    const client = upstreamClient(url, nse);
    const a = new Stream(client);
    await a.allocate();
    await a.allocate();
    for (let i = 0; i < 3; i++) {
      const b = new Stream(client);
      await expect(b.allocate()).rejects.toThrow(/stream ended/);
      expect(b.status).toMatchObject({
        code: grpc.status.RESOURCE_EXHAUSTED,
        details: 'vl3-ipam prefix pool 172.16.0.0/23 is exhausted: no free /24 (2 in use)',
      });
    }
    // retries of a full pool are logged once, not each
    expect(lines.filter((x) => x.includes('level=warn'))).toEqual([expect.stringContaining('prefix pool exhausted')]);
    a.send({ type: 'DELETE', prefix: '172.16.1.0/24' });
    await waitFor(() => ipam.pool.inUse().length === 1, 3000, 'the DELETE');
    expect((await new Stream(client).allocate()).prefix).toBe('172.16.1.0/24');
  });

  it('accepts prefixes with host bits and masks them (configured, requested, deleted)', async () => {
    const { agent, nse } = pki();
    const { url, ipam } = await agentIpam(agent, { prefix: '172.16.1.0/16', clientPrefixLength: 24 });
    expect(ipam.pool.cidr).toBe('172.16.0.0/16');
    const s = new Stream(upstreamClient(url, nse));
    expect((await s.allocate('172.16.7.9/24')).prefix).toBe('172.16.7.0/24');
    s.send({ type: 'DELETE', prefix: '172.16.7.200/24' });
    await waitFor(() => ipam.pool.inUse().length === 0, 3000, 'the DELETE');
  });

  it('serves IPv6: 2001:db8::/64 with client length 112', async () => {
    const { agent, nse } = pki();
    const { url } = await agentIpam(agent, { prefix: '2001:db8::/64', clientPrefixLength: 112 });
    const s = new Stream(upstreamClient(url, nse));
    expect((await s.allocate()).prefix).toBe('2001:db8::/112');
    expect((await s.allocate()).prefix).toBe('2001:db8::1:0/112');
    expect((await s.allocate('2001:db8::1:0/112')).prefix).toBe('2001:db8::2:0/112');
  });

  it('refuses a client without an SVID of a trusted CA, and a plain client', async () => {
    const { ca, agent } = pki();
    const { url, ipam } = await agentIpam(agent, { prefix: '172.16.0.0/16', clientPrefixLength: 24 });
    const rogue = LocalCa.create({ trustDomain: TD });
    // trusts the agent's CA, presents an SVID of another CA
    const stranger = new StaticSource(contextOf(rogue.issue(NSE_ID), ca));
    for (const client of [upstreamClient(url, stranger), upstreamClient(url)]) {
      const s = new Stream(client);
      s.send({ type: 'ALLOCATE' });
      expect((await s.ended()).code).toBe(grpc.status.UNAVAILABLE);
    }
    expect(ipam.pool.inUse()).toEqual([]);
  });

  it('serves plain gRPC on a unix:// listen address', async () => {
    const { agent } = pki();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'nsmt-vl3ipam-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const { url } = await agentIpam(agent, { listen: `unix://${dir}/ipam.sock`, prefix: '172.16.0.0/16', clientPrefixLength: 24 });
    expect(url).toBe(`unix://${dir}/ipam.sock`);
    expect((await new Stream(upstreamClient(url)).allocate()).prefix).toBe('172.16.0.0/24');
  });
});

// ---- a tiny vl3-ipam server built from upstream's proto, for the lease ----

interface Tiny {
  port: number;
  url: string;
  /** Every request received, in order. */
  requests: Request[];
  /** Prefixes held now, by stream. */
  held: Map<string, object>;
  /** Streams open now. */
  open: number;
  stop(): void;
  start(): Promise<void>;
}

/**
 * Hands out `prefixes` in order, the requested one when free; RESOURCE_EXHAUSTED when none is
 * free; frees a stream's prefixes when it ends. `answer` shapes the prefix text on the wire.
 */
async function tinyServer(prefixes: string[], opts: { port?: number; answer?: (p: string) => string } = {}): Promise<Tiny> {
  const tiny: Tiny = {
    port: opts.port ?? 0,
    url: '',
    requests: [],
    held: new Map(),
    open: 0,
    stop: () => {},
    start: async () => {
      const server = new grpc.Server();
      server.addService(UpstreamIpam.service, {
        ManagePrefixes: (call: grpc.ServerDuplexStream<Request, Response>) => {
          const owner = {};
          tiny.open++;
          let done = false;
          const free = () => {
            if (done) return;
            done = true;
            tiny.open--;
            for (const [p, o] of tiny.held) if (o === owner) tiny.held.delete(p);
          };
          call.on('data', (r: Request) => {
            tiny.requests.push(r);
            if (r.type !== 'ALLOCATE') return;
            const p = r.prefix && !tiny.held.has(r.prefix) ? r.prefix : prefixes.find((x) => !tiny.held.has(x));
            if (!p) {
              free();
              call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details: 'pool exhausted' });
              return;
            }
            tiny.held.set(p, owner);
            call.write({ prefix: opts.answer ? opts.answer(p) : p, excludePrefixes: r.excludePrefixes ?? [] });
          });
          call.on('end', () => {
            free();
            call.end();
          });
          call.on('cancelled', free);
          call.on('close', free);
        },
      });
      tiny.port = await new Promise<number>((resolve, reject) =>
        server.bindAsync(`127.0.0.1:${tiny.port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
      );
      tiny.url = `tcp://127.0.0.1:${tiny.port}`;
      tiny.stop = () => {
        server.forceShutdown();
        tiny.held.clear();
        tiny.stop = () => {};
      };
    },
  };
  await tiny.start();
  cleanups.push(() => tiny.stop());
  return tiny;
}

function logs(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger({ level: 'debug', write: (l) => lines.push(l) }), lines };
}

function lease(opts: Partial<PrefixLeaseOptions> & { url: string }): PrefixLease {
  const l = new PrefixLease({ channel: () => undefined, log: silentLogger, backoff: { initialMs: 50, maxMs: 200 }, dialTimeoutMs: 300, ...opts });
  cleanups.push(() => l.close());
  return l;
}

const P = ['172.16.0.0/24', '172.16.1.0/24', '172.16.2.0/24'];

describe('PrefixLease', () => {
  it('leases with one ALLOCATE, sends its excludes, and tells ready() and subscribers', async () => {
    const tiny = await tinyServer(P);
    const l = lease({ url: tiny.url, excludePrefixes: ['10.0.0.0/8'] });
    const seen: [string, string[]][] = [];
    l.onPrefix((p, x) => seen.push([p, x]));
    expect(l.prefix).toBeUndefined();
    l.start();
    expect(await l.ready()).toBe('172.16.0.0/24');
    expect(l.prefix).toBe('172.16.0.0/24');
    expect(tiny.requests).toEqual([{ type: 'ALLOCATE', prefix: '', excludePrefixes: ['10.0.0.0/8'] }]);
    expect(seen).toEqual([['172.16.0.0/24', ['10.0.0.0/8']]]);
    expect(l.view()).toMatchObject({ state: 'leased', prefix: '172.16.0.0/24', failures: 0, error: '' });
  });

  it('asks for `previous` first; two leases get different prefixes', async () => {
    const tiny = await tinyServer(P);
    const a = lease({ url: tiny.url, previous: '172.16.2.0/24' });
    const b = lease({ url: tiny.url, previous: '172.16.2.0/24' });
    a.start();
    expect(await a.ready()).toBe('172.16.2.0/24');
    b.start();
    expect(await b.ready()).toBe('172.16.0.0/24');
  });

  it('after a server restart reconnects, asks for its prefix and gets it back; logs the loss once and its end', async () => {
    const tiny = await tinyServer(P);
    const { log, lines } = logs();
    const l = lease({ url: tiny.url, log, backoff: { initialMs: 50, maxMs: 100 } });
    const seen: string[] = [];
    l.onPrefix((p) => seen.push(p));
    tiny.held.set('172.16.0.0/24', {}); // another endpoint's: the lease gets the second prefix
    l.start();
    expect(await l.ready()).toBe('172.16.1.0/24');
    tiny.stop(); // forgets everything: a fresh ALLOCATE would get the first prefix
    await waitFor(() => l.view().state !== 'leased', 3000, 'the loss');
    expect(l.prefix).toBe('172.16.1.0/24'); // kept while reconnecting
    await sleep(400); // several failed attempts
    await tiny.start();
    await waitFor(() => l.view().state === 'leased', 5000, 'the lease back');
    expect(tiny.requests.at(-1)).toEqual({ type: 'ALLOCATE', prefix: '172.16.1.0/24', excludePrefixes: [] });
    expect(l.prefix).toBe('172.16.1.0/24');
    expect(seen).toEqual(['172.16.1.0/24']); // no new prefix, nothing to tell
    expect(lines.filter((x) => x.includes('level=warn'))).toHaveLength(1);
    expect(lines.filter((x) => x.includes('prefix lease lost'))).toHaveLength(1);
    const restored = lines.find((x) => x.includes('prefix lease restored'));
    expect(restored).toMatch(/failures=([2-9]|\d\d)/);
  });

  it('tells subscribers of a different prefix after a reconnect', async () => {
    const tiny = await tinyServer(P);
    const l = lease({ url: tiny.url });
    const seen: string[] = [];
    l.onPrefix((p) => seen.push(p));
    l.start();
    await l.ready();
    tiny.stop();
    await waitFor(() => l.view().state !== 'leased', 3000, 'the loss');
    await tiny.start();
    tiny.held.set('172.16.0.0/24', {}); // taken by another endpoint meanwhile
    await waitFor(() => seen.length === 2, 5000, 'the new prefix');
    expect(seen).toEqual(['172.16.0.0/24', '172.16.1.0/24']);
    expect(l.prefix).toBe('172.16.1.0/24');
  });

  it('close() ends the stream, which frees the prefix, and stops reconnecting', async () => {
    const tiny = await tinyServer(P);
    const l = lease({ url: tiny.url });
    l.start();
    await l.ready();
    expect(tiny.open).toBe(1);
    l.close();
    await waitFor(() => tiny.open === 0 && tiny.held.size === 0, 3000, 'the stream end at the server');
    await sleep(300);
    expect(tiny.requests).toHaveLength(1);
    expect(l.view().state).toBe('closed');
    await expect(l.ready()).resolves.toBe('172.16.0.0/24'); // the last prefix stays readable
  });

  it('masks host bits in responses; leases IPv6', async () => {
    const tiny = await tinyServer(['172.16.5.0/24'], { answer: () => '172.16.5.77/24' });
    const l = lease({ url: tiny.url });
    l.start();
    expect(await l.ready()).toBe('172.16.5.0/24');
    const v6 = await tinyServer(['2001:db8:0:0::1:0/112']);
    const l6 = lease({ url: v6.url });
    l6.start();
    expect(await l6.ready()).toBe('2001:db8::1:0/112');
  });

  it('retries a server that is down with back-off, one warning, and logs the end with the count', async () => {
    const probe = await tinyServer(P);
    const port = probe.port;
    probe.stop(); // nothing listens there now
    const { log, lines } = logs();
    const l = lease({ url: `tcp://127.0.0.1:${port}`, log, dialTimeoutMs: 100, backoff: { initialMs: 20, maxMs: 80 } });
    l.start();
    await sleep(800);
    expect(l.view()).toMatchObject({ state: 'retrying', prefix: '' });
    expect(l.view().failures).toBeGreaterThan(2);
    expect(l.view().error).toMatch(/cannot reach vl3-ipam at tcp:\/\/127\.0\.0\.1/);
    expect(lines.filter((x) => x.includes('level=warn'))).toEqual([expect.stringContaining('cannot lease a prefix; retrying with back-off')]);
    const tiny = await tinyServer(P, { port });
    cleanups.push(() => tiny.stop());
    expect(await l.ready()).toBe('172.16.0.0/24');
    expect(lines.find((x) => x.includes('prefix lease restored'))).toMatch(/failures=\d+/);
  });

  it('retries a server that refuses (pool exhausted) until a prefix is free', async () => {
    const tiny = await tinyServer(['172.16.0.0/24']);
    tiny.held.set('172.16.0.0/24', {});
    const { log, lines } = logs();
    const l = lease({ url: tiny.url, log });
    l.start();
    await waitFor(() => tiny.requests.length >= 3, 3000, 'retries');
    expect(lines.find((x) => x.includes('level=warn'))).toMatch(/code=POOL_EXHAUSTED .*pool exhausted/);
    tiny.held.clear();
    expect(await l.ready()).toBe('172.16.0.0/24');
  });

  it('ready() rejects on abort and on close(); a bad URL is refused at once', async () => {
    const tiny = await tinyServer([]);
    const l = lease({ url: tiny.url });
    l.start();
    const ac = new AbortController();
    const aborted = l.ready(ac.signal);
    ac.abort();
    await expect(aborted).rejects.toMatchObject({ code: 'CANCELLED' });
    const waiting = l.ready();
    l.close();
    await expect(waiting).rejects.toMatchObject({ code: 'CANCELLED', message: expect.stringMatching(/closed/) });
    expect(() => lease({ url: 'http://x:1' })).toThrow(/want tcp:\/\/host:port or unix:\/\/\/path/);
    expect(() => lease({ url: 'tcp://nohost' })).toThrow(/want tcp:\/\/host:port/);
  });
});

describe('PrefixLease with the agent\'s vl3-ipam over mutual TLS', () => {
  it('leases, gets its prefix back after the server restarts, and frees it on close()', async () => {
    const { agent, nse } = pki();
    const first = await agentIpam(agent, { prefix: '172.16.0.0/16', clientPrefixLength: 24 });
    const port = new URL(first.url).port;
    const mtls = (u: URL) => (u.protocol === 'tcp:' ? channelCredentials(nse) : undefined);
    const a = lease({ url: first.url, channel: mtls });
    const b = lease({ url: first.url, channel: mtls });
    a.start();
    b.start();
    const [pa, pb] = await Promise.all([a.ready(), b.ready()]);
    expect(new Set([pa, pb]).size).toBe(2);
    expect(first.ipam.pool.inUse().sort()).toEqual([pa, pb].sort());

    await first.stop(); // memory only: every lease is gone with it
    await waitFor(() => a.view().state !== 'leased' && b.view().state !== 'leased', 3000, 'both leases lost');
    const second = await agentIpam(agent, { listen: `127.0.0.1:${port}`, prefix: '172.16.0.0/16', clientPrefixLength: 24 });
    await waitFor(() => a.view().state === 'leased' && b.view().state === 'leased', 5000, 'both leases back');
    expect([a.prefix, b.prefix]).toEqual([pa, pb]);
    expect(second.ipam.pool.inUse().sort()).toEqual([pa, pb].sort());

    a.close();
    await waitFor(() => second.ipam.pool.inUse().length === 1, 3000, 'a\'s prefix freed');
    expect(second.ipam.pool.inUse()).toEqual([pb]);
  });
});
