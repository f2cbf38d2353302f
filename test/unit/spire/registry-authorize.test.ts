/** Registry authorization: token policies on the `path` header and name ownership. */
import { describe, it, expect } from 'vitest';
import { FakeClock } from '../../../src/core/clock';
import { Ctx } from '../../../src/core/ctx';
import { AgentError } from '../../../src/core/errors';
import { createLogger } from '../../../src/core/log';
import { chainNseRegistry, chainNsRegistry } from '../../../src/core/registry';
import { authorizeNseRegistry, authorizeNsRegistry } from '../../../src/registry/common/authorize';
import { MemoryStore, memoryNseRegistry, memoryNsRegistry } from '../../../src/registry';
import { REGISTRY_PATH, RegistryPath } from '../../../src/registry/path';
import { LocalCa } from '../../../src/spire/ca';
import { PEER, peerFromCertificate } from '../../../src/spire/peer';
import type { X509Svid } from '../../../src/spire/svid';
import { signEs256 } from '../../../src/spire/token';

const ca = LocalCa.create({ trustDomain: 'example.org' });
const NSE1 = ca.issue('spiffe://example.org/nse/one');
const NSE2 = ca.issue('spiffe://example.org/nse/two');
const MGR = ca.issue('spiffe://example.org/nsm/agent/a');
const REG = ca.issue('spiffe://example.org/nsm/agent/registry');

const clock = new FakeClock(Date.now());
const tok = (from: X509Svid, to?: X509Svid, s = 600) =>
  signEs256({ sub: from.id, ...(to ? { aud: [to.id] } : {}), exp: Math.floor(clock.now() / 1000) + s }, from.key);

function ctx(peer?: X509Svid, path?: RegistryPath, lines: string[] = []): Ctx {
  let c = Ctx.background({ clock, log: createLogger({ level: 'debug', write: (l) => lines.push(l) }) });
  if (peer) c = c.with(PEER, peerFromCertificate(peer.chain[0]!));
  if (path) c = c.with(REGISTRY_PATH, path);
  return c;
}
/** The NSE registers directly: its own segment at Index 0. */
const direct = (nse: X509Svid): RegistryPath => ({ Index: 0, PathSegments: [{ token: tok(nse, REG) }] });

async function code(p: Promise<unknown>): Promise<string | undefined> {
  return p.then(
    () => undefined,
    (e: unknown) => (e instanceof AgentError ? e.code : String(e)),
  );
}

function nseChain(opts: Parameters<typeof authorizeNseRegistry>[0] = {}) {
  const store = new MemoryStore();
  return chainNseRegistry(authorizeNseRegistry({ self: () => REG.id, ...opts }), memoryNseRegistry(store));
}

describe('registry authorize', () => {
  it('only the identity that first registered a name may refresh or unregister it', async () => {
    const reg = nseChain();
    const lines: string[] = [];
    await reg.register(ctx(NSE1, direct(NSE1)), { name: 'nse-a', network_service_names: ['svc'] });
    await reg.register(ctx(NSE1, direct(NSE1)), { name: 'nse-a', network_service_names: ['svc'] }); // refresh
    const refused = await reg.register(ctx(NSE2, direct(NSE2), lines), { name: 'nse-a' }).catch((e: AgentError) => e);
    expect(refused).toBeInstanceOf(AgentError);
    expect((refused as AgentError).code).toBe('PERMISSION_DENIED');
    expect((refused as AgentError).message).toBe(
      `register of network service endpoint nse-a by ${NSE2.id} refused by ${REG.id}: network service endpoint nse-a belongs to ${NSE1.id}`,
    );
    expect(lines.some((l) => l.includes('registry call refused') && l.includes(`requester=${NSE2.id}`))).toBe(true);
    expect(await code(reg.unregister(ctx(NSE2, direct(NSE2)), { name: 'nse-a' }))).toBe('PERMISSION_DENIED');
    await reg.unregister(ctx(NSE1, direct(NSE1)), { name: 'nse-a' });
    // once unregistered, the name is free
    await reg.register(ctx(NSE2, direct(NSE2)), { name: 'nse-a' });
  });

  it('the original registrant is segment 0 when an agent forwards the registration', async () => {
    const reg = nseChain();
    const via = (nse: X509Svid): RegistryPath => ({ Index: 1, PathSegments: [{ token: tok(nse, MGR) }, { token: tok(MGR, REG) }] });
    await reg.register(ctx(MGR, via(NSE1)), { name: 'nse-b' });
    expect(await code(reg.register(ctx(MGR, via(NSE2)), { name: 'nse-b' }))).toBe('PERMISSION_DENIED');
    expect(await code(reg.register(ctx(NSE1, direct(NSE1)), { name: 'nse-b' }))).toBeUndefined();
  });

  it('finds the caller segment also after a registry updatepath added our own', async () => {
    const reg = nseChain();
    const withOwn: RegistryPath = { Index: 1, PathSegments: [{ token: tok(NSE1, REG) }, { token: tok(REG, NSE1) }] };
    expect(await code(reg.register(ctx(NSE1, withOwn), { name: 'nse-c' }))).toBeUndefined();
  });

  it('refuses tokens not signed by the TLS peer, expired or unchained', async () => {
    const reg = nseChain();
    expect(await code(reg.register(ctx(NSE2, direct(NSE1)), { name: 'x' }))).toBe('PERMISSION_DENIED'); // NSE1's token over NSE2's TLS
    expect(await code(reg.register(ctx(NSE1, { Index: 0, PathSegments: [{ token: tok(NSE1, REG, -5) }] }), { name: 'x' }))).toBe('PERMISSION_DENIED');
    const unchained: RegistryPath = { Index: 1, PathSegments: [{ token: tok(NSE1, REG) }, { token: tok(MGR, REG) }] };
    expect(await code(reg.register(ctx(MGR, unchained), { name: 'x' }))).toBe('PERMISSION_DENIED');
    expect(await code(reg.register(ctx(NSE1, { Index: 0, PathSegments: [{ token: 'garbage' }] }), { name: 'x' }))).toBe('PERMISSION_DENIED');
  });

  it('without a path uses the TLS identity; local callers act as this agent', async () => {
    const reg = nseChain();
    await reg.register(ctx(NSE1), { name: 'n1' });
    expect(await code(reg.register(ctx(NSE2), { name: 'n1' }))).toBe('PERMISSION_DENIED');
    await reg.register(ctx(), { name: 'local-nse' });
    expect(await code(reg.unregister(ctx(NSE1), { name: 'local-nse' }))).toBe('PERMISSION_DENIED');
    expect(await code(reg.unregister(ctx(), { name: 'local-nse' }))).toBeUndefined();
    expect(await code(reg.register(ctx(undefined, { Index: 0, PathSegments: null }), { name: 'n1' }))).toBe('PERMISSION_DENIED');
  });

  it('forgets an owner that stopped registering after forgetAfterMs', async () => {
    const reg = nseChain({ forgetAfterMs: 60_000 });
    await reg.register(ctx(NSE1, direct(NSE1)), { name: 'n' });
    clock.advance(30_000);
    expect(await code(reg.register(ctx(NSE2, direct(NSE2)), { name: 'n' }))).toBe('PERMISSION_DENIED');
    clock.advance(61_000);
    expect(await code(reg.register(ctx(NSE2, direct(NSE2)), { name: 'n' }))).toBeUndefined();
  });

  it('guards network service names the same way', async () => {
    const reg = chainNsRegistry(authorizeNsRegistry({ self: () => REG.id }), memoryNsRegistry(new MemoryStore()));
    await reg.register(ctx(NSE1, direct(NSE1)), { name: 'svc', payload: 'IP' });
    expect(await code(reg.register(ctx(NSE2, direct(NSE2)), { name: 'svc', payload: 'IP' }))).toBe('PERMISSION_DENIED');
    expect(await code(reg.unregister(ctx(NSE2, direct(NSE2)), { name: 'svc' }))).toBe('PERMISSION_DENIED');
    await reg.unregister(ctx(NSE1, direct(NSE1)), { name: 'svc' });
  });

  it('lets another configure a network service that an endpoint host registered bare', async () => {
    const reg = chainNsRegistry(authorizeNsRegistry({ self: () => REG.id }), memoryNsRegistry(new MemoryStore()));
    await reg.register(ctx(NSE1, direct(NSE1)), { name: 'svc', payload: 'IP' });
    const configured = { name: 'svc', payload: 'IP', matches: [{ source_selector: {}, routes: [{ destination_selector: { app: 'x' } }] }] };
    expect(await code(reg.register(ctx(NSE2, direct(NSE2)), configured))).toBeUndefined();
    // now the configuration is NSE2's: the endpoint host can neither overwrite nor remove it
    expect(await code(reg.register(ctx(NSE1, direct(NSE1)), { name: 'svc', payload: 'IP' }))).toBe('PERMISSION_DENIED');
    expect(await code(reg.register(ctx(NSE1, direct(NSE1)), configured))).toBe('PERMISSION_DENIED');
    expect(await code(reg.unregister(ctx(NSE1, direct(NSE1)), { name: 'svc' }))).toBe('PERMISSION_DENIED');
    await reg.unregister(ctx(NSE2, direct(NSE2)), { name: 'svc' });
  });
});
