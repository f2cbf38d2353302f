/** The authorize chain elements (server, client) and the agent's service policy. */
import { describe, it, expect } from 'vitest';
import type { Connection } from '../../../src/api';
import { toTimestamp } from '../../../src/api/time';
import { FakeClock } from '../../../src/core/clock';
import { Ctx } from '../../../src/core/ctx';
import { AgentError } from '../../../src/core/errors';
import { createLogger } from '../../../src/core/log';
import { chainClient, chainServer, NetworkServiceClient, nextClient } from '../../../src/core/networkservice';
import { authorizeClient, authorizeServer, ServicePolicy } from '../../../src/networkservice/authorize';
import { LocalCa } from '../../../src/spire/ca';
import { PEER, peerFromCertificate, SERVER_PEER } from '../../../src/spire/peer';
import type { X509Svid } from '../../../src/spire/svid';
import { signEs256 } from '../../../src/spire/token';

const ca = LocalCa.create({ trustDomain: 'example.org' });
const C = ca.issue('spiffe://example.org/ns/db/client');
const A = ca.issue('spiffe://example.org/nsm/agent/a');
const B = ca.issue('spiffe://example.org/nsm/agent/b');
const X = ca.issue('spiffe://example.org/ns/web/intruder');

const clock = new FakeClock(Date.now());
const exp = (s = 600) => Math.floor(clock.now() / 1000) + s;
const tok = (from: X509Svid, to?: X509Svid, e = exp()) => signEs256({ sub: from.id, ...(to ? { aud: [to.id] } : {}), exp: e }, from.key);

/** C → A → B, as B sees it at index 2 (after updatepath/updatetoken). */
function path(tokens: string[], index = 2): Connection {
  return {
    id: 'conn-b',
    network_service: 'db-replication',
    path: { index, path_segments: tokens.map((t, i) => ({ name: `hop-${i}`, id: `id-${i}`, token: t, expires: toTimestamp(clock.now() + 600_000) })) },
  };
}
const goodPath = () => path([tok(C, A), tok(A, B), tok(B, A)]);

function ctxWith(peer?: X509Svid): { ctx: Ctx; lines: string[] } {
  const lines: string[] = [];
  const log = createLogger({ level: 'debug', write: (l) => lines.push(l) });
  let ctx = Ctx.background({ clock, log });
  if (peer) ctx = ctx.with(PEER, peerFromCertificate(peer.chain[0]!));
  return { ctx, lines };
}

async function denied(p: Promise<unknown>): Promise<AgentError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AgentError);
  expect((err as AgentError).code).toBe('PERMISSION_DENIED');
  return err as AgentError;
}

describe('authorize server', () => {
  const server = authorizeServer({ self: () => B.id });

  it('admits a valid, chained, unexpired path whose previous token the TLS peer signed', async () => {
    const { ctx } = ctxWith(A);
    await expect(server.request(ctx, { connection: goodPath() })).resolves.toBeTruthy();
    await expect(server.close(ctx, goodPath())).resolves.toBeUndefined();
  });

  it('refuses a previous-hop token signed by a key other than the TLS peer', async () => {
    const { ctx, lines } = ctxWith(A);
    const forged = path([tok(C, A), signEs256({ sub: A.id, aud: [B.id], exp: exp() }, X.key), tok(B, A)]);
    const err = await denied(server.request(ctx, { connection: forged }));
    expect(err.message).toMatch(/prev_token_signed: .*not signed by the TLS peer spiffe:\/\/example.org\/nsm\/agent\/a/);
    expect(err.message).toContain(C.id);
    expect(err.message).toContain(B.id);
    expect(lines.some((l) => /request refused/.test(l) && l.includes(`peer=${A.id}`) && l.includes(`requester=${C.id}`) && l.includes(`self=${B.id}`))).toBe(true);
    // the same path from the peer that did sign is fine
    await expect(server.request(ctxWith(X).ctx, { connection: path([tok(C, X), signEs256({ sub: X.id, aud: [B.id], exp: exp() }, X.key), tok(B, X)]) })).resolves.toBeTruthy();
  });

  it('refuses an expired token, a broken chain and a token that does not decode', async () => {
    const { ctx } = ctxWith(A);
    const expired = await denied(server.request(ctx, { connection: path([tok(C, A, exp(-10)), tok(A, B), tok(B, A)]) }));
    expect(expired.message).toMatch(/tokens_expired: segment 0 \(spiffe:\/\/example.org\/ns\/db\/client\).*expired/);
    const broken = await denied(server.request(ctx, { connection: path([tok(C, X), tok(A, B), tok(B, A)]) }));
    expect(broken.message).toMatch(/tokens_chained: .*not addressed to spiffe:\/\/example.org\/nsm\/agent\/a/);
    const garbage = await denied(server.request(ctx, { connection: path(['not-a-jwt', tok(A, B), tok(B, A)]) }));
    expect(garbage.message).toMatch(/tokens_valid: segment 0/);
    const missing = await denied(server.request(ctx, { connection: path([tok(C, A), '', tok(B, A)]) }));
    expect(missing.message).toMatch(/tokens_valid: segment 1: token is empty/);
  });

  it('lets Close through with expired tokens but not with forged ones', async () => {
    const { ctx } = ctxWith(A);
    await expect(server.close(ctx, path([tok(C, A, exp(-10)), tok(A, B, exp(-10)), tok(B, A)]))).resolves.toBeUndefined();
    await denied(server.close(ctx, path([tok(C, A), tok(X, B), tok(B, A)])));
  });

  it('does not check local callers (no TLS peer); checks index 0 without a previous hop', async () => {
    await expect(server.request(ctxWith().ctx, { connection: path(['', ''], 1) })).resolves.toBeTruthy();
    await expect(server.request(ctxWith(A).ctx, { connection: path([tok(B, A)], 0) })).resolves.toBeTruthy();
  });

  it('applies the agent policy to the requesting identity (segment 0)', async () => {
    const policy = new ServicePolicy([{ service: 'db-replication', allow: ['spiffe://example.org/ns/db/*'] }]);
    const guarded = chainServer(authorizeServer({ servicePolicy: policy, self: () => B.id }));
    const { ctx } = ctxWith(A);
    await expect(guarded.request(ctx, { connection: goodPath() })).resolves.toBeTruthy();
    const err = await denied(guarded.request(ctx, { connection: path([tok(X, A), tok(A, B), tok(B, A)]) }));
    expect(err.message).toBe(
      `${X.id} (via ${A.id}) refused by ${B.id}: the agent policy does not allow it to connect to network service db-replication`,
    );
    // other services are open
    await expect(guarded.request(ctx, { connection: { ...path([tok(X, A), tok(A, B), tok(B, A)]), network_service: 'icmp' } })).resolves.toBeTruthy();
    // Close is not subject to the service policy
    await expect(guarded.close(ctx, path([tok(X, A), tok(A, B), tok(B, A)]))).resolves.toBeUndefined();
  });

  it('refuses a path started in a trust domain this agent holds no bundle for, naming it', async () => {
    const evil = LocalCa.create({ trustDomain: 'evil.example' });
    const E = evil.issue('spiffe://evil.example/ns/db/client');
    const strict = chainServer(authorizeServer({ self: () => B.id, trusts: (td) => td === 'example.org' }));
    const { ctx, lines } = ctxWith(A);
    // the federated peer A passes on a Request that a client of evil.example started
    const err = await denied(strict.request(ctx, { connection: path([tok(E, A), tok(A, B), tok(B, A)]) }));
    expect(err.message).toContain(`${E.id} (via ${A.id}) refused by ${B.id}`);
    expect(err.message).toContain('path segment 0');
    expect(err.message).toContain('trust domain evil.example, which this agent does not trust');
    expect(lines.some((l) => /request refused/.test(l) && l.includes('evil.example'))).toBe(true);
    // paths of trusted trust domains pass as before
    await expect(strict.request(ctx, { connection: goodPath() })).resolves.toBeTruthy();
  });
});

describe('service policy', () => {
  it('matches exact IDs, trust domains, path prefixes and a * service', () => {
    const p = new ServicePolicy([
      { service: 'db', allow: ['spiffe://example.org/ns/db/*', 'spiffe://example.org/admin'] },
      { service: 'db', allow: ['spiffe://other.org/*'] },
      { service: '*', allow: ['spiffe://example.org/*'] },
    ]);
    expect(p.allows('db', 'spiffe://example.org/ns/db/x')).toBe(true);
    expect(p.allows('db', 'spiffe://example.org/admin')).toBe(true);
    expect(p.allows('db', 'spiffe://other.org/anyone')).toBe(true);
    expect(p.allows('db', 'spiffe://example.org/ns/web/x')).toBe(false);
    expect(p.allows('web', 'spiffe://example.org/ns/web/x')).toBe(true);
    expect(p.allows('web', 'spiffe://other.org/x')).toBe(false);
    expect(new ServicePolicy([]).allows('x', 'spiffe://a/b')).toBe(true);
    expect(() => new ServicePolicy([{ service: 'db', allow: ['spiffe://example.org/ok', 'example.org/*'] }])).toThrow(/policy\[0\]\.allow\[1\]/);
  });
});

describe('authorize client', () => {
  /** Stands for the gRPC glue: fills the slot with the server and answers with a path. */
  function remote(server: X509Svid, answer: () => Connection): NetworkServiceClient & { closes: number } {
    const r = {
      closes: 0,
      async request(ctx: Ctx) {
        const slot = ctx.get(SERVER_PEER);
        if (slot) slot.peer = peerFromCertificate(server.chain[0]!);
        return answer();
      },
      async close(ctx: Ctx, conn: Connection) {
        r.closes++;
        await nextClient(ctx).close(ctx, conn);
      },
    };
    return r;
  }

  /** C → A (index 0 is C's own view: A's client), answer carries A's token at index 1. */
  const answer = (serverTok: string) => (): Connection => ({
    id: 'c',
    path: { index: 0, path_segments: [{ token: tok(C, A) }, { token: serverTok }] },
  });

  it('accepts an answer whose next token the server signed', async () => {
    const chain = chainClient(authorizeClient(), remote(A, answer(tok(A, B))));
    await expect(chain.request(ctxWith().ctx, { connection: { id: 'c' } })).resolves.toBeTruthy();
  });

  it('refuses and closes an answer whose next token another key signed', async () => {
    const r = remote(A, answer(signEs256({ sub: A.id, aud: [B.id], exp: exp() }, X.key)));
    const chain = chainClient(authorizeClient({ self: () => C.id }), r);
    const err = await denied(chain.request(ctxWith().ctx, { connection: { id: 'c' } }));
    expect(err.message).toMatch(/next_token_signed/);
    expect(err.message).toContain(A.id);
    expect(r.closes).toBe(1);
  });

  it('skips the check when no TLS server was reached (in-process)', async () => {
    const inProcess: NetworkServiceClient = { request: async () => answer('garbage')(), close: async () => {} };
    await expect(chainClient(authorizeClient(), inProcess).request(ctxWith().ctx, { connection: { id: 'c' } })).resolves.toBeTruthy();
  });
});
