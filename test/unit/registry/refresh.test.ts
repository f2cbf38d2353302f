import { describe, it, expect } from 'vitest';
import { FakeClock } from '../../../src/core/clock';
import { Ctx, Key } from '../../../src/core/ctx';
import { AgentError } from '../../../src/core/errors';
import { NseRegistry, chainNseRegistry } from '../../../src/core/registry';
import type { NetworkServiceEndpoint, NetworkServiceEndpointResponse } from '../../../src/api';
import { fromTimestamp, toTimestamp } from '../../../src/api/time';
import { refreshNseClient } from '../../../src/registry/common/refresh';
import type { Logger } from '../../../src/core/log';
import { flush } from './helpers';

const MIN = 60_000;
const MARK = new Key<string>('test.mark');

/** A stand-in for the remote registry: records calls, can fail, and serves controllable watches. */
class FakeRemote implements NseRegistry {
  registers: { at: number; nse: NetworkServiceEndpoint; mark: string | undefined }[] = [];
  unregisters: string[] = [];
  failNext = 0;
  watches: Watch[] = [];
  constructor(
    private readonly clock: FakeClock,
    private readonly expiry = MIN,
  ) {}
  async register(ctx: Ctx, nse: NetworkServiceEndpoint): Promise<NetworkServiceEndpoint> {
    this.registers.push({ at: this.clock.now(), nse, mark: ctx.get(MARK) });
    if (this.failNext > 0) {
      this.failNext--;
      throw new AgentError('UNAVAILABLE', 'registry down');
    }
    return {
      ...nse,
      expiration_time: toTimestamp(this.clock.now() + this.expiry),
      initial_registration_time: nse.initial_registration_time ?? toTimestamp(1000),
    };
  }
  find(ctx: Ctx): AsyncIterable<NetworkServiceEndpointResponse> {
    const w = new Watch(ctx.signal);
    this.watches.push(w);
    return w.iterate();
  }
  async unregister(_ctx: Ctx, nse: NetworkServiceEndpoint): Promise<void> {
    this.unregisters.push(nse.name ?? '');
  }
  get open(): Watch[] {
    return this.watches.filter((w) => !w.closed);
  }
}

class Watch {
  private queue: (NetworkServiceEndpointResponse | Error)[] = [];
  private wake: (() => void) | undefined;
  closed = false;
  constructor(private readonly signal: AbortSignal) {
    signal.addEventListener('abort', () => this.poke());
  }
  push(x: NetworkServiceEndpointResponse | Error): void {
    this.queue.push(x);
    this.poke();
  }
  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
  async *iterate(): AsyncIterable<NetworkServiceEndpointResponse> {
    try {
      for (;;) {
        if (this.signal.aborted) return;
        const x = this.queue.shift();
        if (x instanceof Error) throw x;
        if (x) yield x;
        else await new Promise<void>((r) => (this.wake = r));
      }
    } finally {
      this.closed = true;
    }
  }
}

function setup(opts: { heal?: boolean; expiry?: number } = {}) {
  const clock = new FakeClock();
  const remote = new FakeRemote(clock, opts.expiry);
  const life = new AbortController();
  // random 0.5 = no jitter, so the retry times are exact.
  const chain = chainNseRegistry(refreshNseClient({ signal: life.signal, heal: opts.heal, random: () => 0.5 }), remote);
  const lines: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
  const recording: Logger = {
    level: 'debug',
    debug: (msg, fields = {}) => lines.push({ level: 'debug', msg, fields }),
    info: (msg, fields = {}) => lines.push({ level: 'info', msg, fields }),
    warn: (msg, fields = {}) => lines.push({ level: 'warn', msg, fields }),
    error: (msg, fields = {}) => lines.push({ level: 'error', msg, fields }),
    with: () => recording,
  };
  const ctx = Ctx.background({ clock, log: recording }).with(MARK, 'original');
  return { clock, remote, life, chain, ctx, lines };
}

describe('refresh client', () => {
  it('re-registers at 2/3 of the time left to expiration_time, again and again', async () => {
    const { clock, remote, chain, ctx, life } = setup();
    const t0 = clock.now();
    await chain.register(ctx, { name: 'a', url: 'tcp://x' });
    expect(remote.registers).toHaveLength(1);

    clock.advance(40_000 - 1);
    await flush();
    expect(remote.registers).toHaveLength(1);
    clock.advance(1);
    await flush();
    expect(remote.registers).toHaveLength(2);
    expect(remote.registers[1]?.at).toBe(t0 + 40_000);

    clock.advance(40_000);
    await flush();
    expect(remote.registers.map((r) => r.at - t0)).toEqual([0, 40_000, 80_000]);
    life.abort();
  });

  it('re-sends the last answer with the expiry cleared, keeping ctx values and initial_registration_time', async () => {
    const { clock, remote, chain, ctx, life } = setup();
    await chain.register(ctx, { name: 'a', url: 'tcp://x' });
    clock.advance(40_000);
    await flush();
    const refresh = remote.registers[1];
    expect(refresh?.nse.name).toBe('a');
    expect(refresh?.nse.url).toBe('tcp://x');
    expect(refresh?.nse.expiration_time).toBeNull();
    expect(fromTimestamp(refresh?.nse.initial_registration_time)).toBe(1000);
    expect(refresh?.mark).toBe('original');
    life.abort();
  });

  it('retries a failed refresh after 200, 400, 800 ms until it works, then goes back to 2/3', async () => {
    const { clock, remote, chain, ctx, life } = setup();
    const t0 = clock.now();
    await chain.register(ctx, { name: 'a' });
    remote.failNext = 3;
    clock.advance(40_000);
    await flush();
    for (const wait of [200, 400, 800]) {
      clock.advance(wait);
      await flush();
    }
    expect(remote.registers.map((r) => r.at - t0)).toEqual([0, 40_000, 40_200, 40_600, 41_400]);
    clock.advance(40_000);
    await flush();
    expect(remote.registers.map((r) => r.at - t0).slice(-1)).toEqual([81_400]);
    life.abort();
  });

  it('backs off exponentially up to 1 s while the registry is down, logging the outage once and its end', async () => {
    const { clock, remote, chain, ctx, life, lines } = setup();
    await chain.register(ctx, { name: 'a' });
    remote.failNext = 1000;
    const t = clock.now() + 40_000;
    clock.advance(40_000);
    await flush();
    // Two and a half minutes of outage, stepped 100 ms at a time.
    for (let i = 0; i < 1500; i++) {
      clock.advance(100);
      await flush();
    }
    const gaps = remote.registers.slice(1).map((r, i, all) => r.at - (i === 0 ? t : all[i - 1]!.at));
    expect(gaps.slice(0, 6)).toEqual([0, 200, 400, 800, 1000, 1000]);
    expect(Math.max(...gaps)).toBe(1000);
    const tries = remote.registers.length - 1;
    expect(tries).toBeLessThan(160); // 200 ms apart would be 750
    const warns = lines.filter((l) => l.level === 'warn');
    // the first failure, then one reminder per minute with the count
    expect(warns.length).toBe(3);
    expect(warns[0]?.msg).toMatch(/re-register failed/);
    expect(warns[2]?.fields.failures).toBeGreaterThan(100);

    remote.failNext = 0;
    clock.advance(1000);
    await flush();
    const back = lines.filter((l) => l.level === 'info' && /registry reachable again/.test(l.msg));
    expect(back).toHaveLength(1);
    expect(back[0]?.msg).toBe(`registry reachable again after ${tries} failures`);
    life.abort();
  });

  it('jitters each wait by at most 20 %', async () => {
    const clock = new FakeClock();
    const remote = new FakeRemote(clock);
    const life = new AbortController();
    const chain = chainNseRegistry(refreshNseClient({ signal: life.signal, random: () => 0 }), remote);
    await chain.register(Ctx.background({ clock }), { name: 'a' });
    remote.failNext = 2;
    clock.advance(40_000);
    await flush();
    clock.advance(159);
    await flush();
    expect(remote.registers).toHaveLength(2);
    clock.advance(1);
    await flush();
    expect(remote.registers).toHaveLength(3);
    life.abort();
  });

  it('stops on Unregister, which goes through to the registry', async () => {
    const { clock, remote, chain, ctx } = setup();
    await chain.register(ctx, { name: 'a' });
    await chain.unregister(ctx, { name: 'a' });
    expect(remote.unregisters).toEqual(['a']);
    clock.advance(10 * MIN);
    await flush();
    expect(remote.registers).toHaveLength(1);
    expect(clock.pending()).toBe(0);
  });

  it('Unregister during a failing refresh stops the retries', async () => {
    const { clock, remote, chain, ctx } = setup();
    await chain.register(ctx, { name: 'a' });
    remote.failNext = 1000;
    clock.advance(40_000 + 200);
    await flush();
    const n = remote.registers.length;
    await chain.unregister(ctx, { name: 'a' });
    clock.advance(10_000);
    await flush();
    expect(remote.registers.length).toBe(n);
    expect(clock.pending()).toBe(0);
  });

  it('stops everything when its lifetime signal aborts, without unregistering', async () => {
    const { clock, remote, chain, ctx, life } = setup({ heal: true });
    await chain.register(ctx, { name: 'a' });
    await chain.register(ctx, { name: 'b' });
    await flush();
    expect(remote.open).toHaveLength(2);
    life.abort();
    await flush();
    clock.advance(10 * MIN);
    await flush();
    expect(remote.registers).toHaveLength(2);
    expect(remote.unregisters).toEqual([]);
    expect(remote.open).toHaveLength(0);
    expect(clock.pending()).toBe(0);
  });
});

describe('refresh client with heal', () => {
  it('watches its own name and re-registers at once when the watch breaks, then watches again', async () => {
    const { clock, remote, chain, ctx, life } = setup({ heal: true });
    await chain.register(ctx, { name: 'a' });
    await flush();
    expect(remote.watches).toHaveLength(1);
    clock.advance(5_000);
    remote.registers.length = 0;
    remote.watches[0]?.push(new AgentError('UNAVAILABLE', 'registry restarted'));
    await flush();
    expect(remote.registers).toHaveLength(1);
    expect(remote.registers[0]?.mark).toBe('original');
    expect(remote.open).toHaveLength(1);
    expect(remote.watches).toHaveLength(2);
    life.abort();
  });

  it('retries the heal with back-off while the registry is down', async () => {
    const { clock, remote, chain, ctx, life } = setup({ heal: true });
    await chain.register(ctx, { name: 'a' });
    await flush();
    clock.advance(5_000);
    remote.registers.length = 0;
    remote.failNext = 2;
    const t = clock.now();
    remote.watches[0]?.push(new AgentError('UNAVAILABLE', 'gone'));
    await flush();
    clock.advance(200);
    await flush();
    clock.advance(400);
    await flush();
    expect(remote.registers.map((r) => r.at - t)).toEqual([0, 200, 600]);
    expect(remote.open).toHaveLength(1);
    life.abort();
  });

  it('re-registers when the registry reports it deleted while still registered', async () => {
    const { clock, remote, chain, ctx, life } = setup({ heal: true });
    await chain.register(ctx, { name: 'a' });
    await flush();
    remote.watches[0]?.push({ network_service_endpoint: { name: 'a' }, deleted: false });
    await flush();
    expect(remote.registers).toHaveLength(1);
    remote.watches[0]?.push({ network_service_endpoint: { name: 'a' }, deleted: true });
    await flush();
    expect(remote.registers).toHaveLength(2);
    expect(remote.watches).toHaveLength(1); // the watch itself is still fine
    // and the refresh timer was re-armed from the new answer
    clock.advance(40_000);
    await flush();
    expect(remote.registers).toHaveLength(3);
    life.abort();
  });

  it('does not heal after Unregister', async () => {
    const { clock, remote, chain, ctx } = setup({ heal: true });
    await chain.register(ctx, { name: 'a' });
    await flush();
    const w = remote.watches[0];
    await chain.unregister(ctx, { name: 'a' });
    w?.push({ network_service_endpoint: { name: 'a' }, deleted: true });
    await flush();
    clock.advance(MIN);
    await flush();
    expect(remote.registers).toHaveLength(1);
    expect(remote.open).toHaveLength(0);
  });

  it('backs off when the watch breaks right after opening', async () => {
    const { clock, remote, chain, ctx, life } = setup({ heal: true });
    await chain.register(ctx, { name: 'a' });
    await flush();
    remote.watches[0]?.push(new AgentError('INTERNAL', 'no find'));
    await flush();
    expect(remote.registers).toHaveLength(1);
    clock.advance(200);
    await flush();
    expect(remote.registers).toHaveLength(2);
    life.abort();
  });
});
