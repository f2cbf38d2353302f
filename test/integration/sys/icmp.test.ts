// SPDX-License-Identifier: Apache-2.0
// Root only: ICMP echo from inside network namespaces (native raw sockets on the
// libuv pool) over a real veth pair, and the kernel liveness check built on it.
import { readdirSync, readlinkSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Connection } from '../../../src/api';
import { kernelLivenessCheck } from '../../../src/networkservice/heal/liveness';
import {
  Rtnl,
  SysError,
  addAddress,
  createVethPair,
  hostNetns,
  icmpEcho,
  setLinkUp,
  type Netns,
  type VethPair,
} from '../../../src/sys';
import { tempNetns, type TempNetns } from '../../helpers/netns';

const root = process.getuid?.() === 0;

type Named = Netns & { name: string };

interface Wire {
  a: Named;
  b: Named;
  pair: VethPair;
}

/**
 * Two namespaces joined by a veth: a has 10.231.0.1/24 and fd77::1/64, b has .2 and ::2
 * (connected routes, no DAD). The first echo of each family also warms up ARP/ND.
 */
async function wire(tmp: TempNetns, label: string): Promise<Wire> {
  const a = await tmp.create(`${label}a`);
  const b = await tmp.create(`${label}b`);
  const pair = await createVethPair(
    Rtnl.for(hostNetns()),
    { name: 'nsmt-ia', ns: a, up: true },
    { name: 'nsmt-ib', ns: b, up: true },
  );
  await Promise.all([
    addAddress(Rtnl.for(a), pair.a.index, '10.231.0.1/24'),
    addAddress(Rtnl.for(a), pair.a.index, 'fd77::1/64', { noDad: true }),
    addAddress(Rtnl.for(b), pair.b.index, '10.231.0.2/24'),
    addAddress(Rtnl.for(b), pair.b.index, 'fd77::2/64', { noDad: true }),
  ]);
  expect(await icmpEcho(a.name, '10.231.0.1', '10.231.0.2', { timeoutMs: 2000 })).toBeGreaterThan(0);
  expect(await icmpEcho(a.name, 'fd77::1', 'fd77::2', { timeoutMs: 2000 })).toBeGreaterThan(0);
  return { a, b, pair };
}

/** Elapsed ms of `fn`, with its result. */
async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - t0 };
}

const SLACK_MS = 150;

describe.skipIf(!root)('icmpEcho', () => {
  const tmp = tempNetns('icmp');
  let w: Wire;

  beforeAll(async () => {
    w = await wire(tmp, '');
  });
  afterAll(async () => {
    await tmp.cleanup();
    Rtnl.closeAll();
  });

  it('counts v4 and v6 replies, both directions, as soon as one arrives', async () => {
    for (const [ns, src, dst] of [
      [w.a.name, '10.231.0.1/24', '10.231.0.2/24'],
      [w.b.path, '10.231.0.2', '10.231.0.1'],
      [w.a.path, 'fd77::1/64', 'fd77::2'],
      [`file://${w.b.path}`, 'fd77::2', 'fd77:0:0:0::1/128'],
    ] as const) {
      const { value, ms } = await timed(() => icmpEcho(ns, src, dst, { timeoutMs: 1000 }));
      expect(value, `${src} -> ${dst}`).toBeGreaterThanOrEqual(1);
      expect(ms, `${src} -> ${dst} returns at the first reply`).toBeLessThan(200);
    }
    // One request, a generous timeout: still one reply.
    expect(await icmpEcho(w.a.name, '10.231.0.1', '10.231.0.2', { timeoutMs: 1000, count: 1 })).toBe(1);
  });

  it('no reply resolves 0 after the timeout (not an error), while the event loop keeps running', async () => {
    // 10.231.0.99 is on the link but nobody has it: ARP fails, nothing comes back.
    let ticks = 0;
    const timer = setInterval(() => ticks++, 20);
    try {
      const { value, ms } = await timed(() => icmpEcho(w.a.name, '10.231.0.1', '10.231.0.99', { timeoutMs: 500 }));
      expect(value).toBe(0);
      expect(ms).toBeGreaterThanOrEqual(495);
      expect(ms).toBeLessThan(500 + SLACK_MS);
      expect(ticks).toBeGreaterThanOrEqual(10); // ~25 if the loop never blocked
    } finally {
      clearInterval(timer);
    }
  });

  it('rejects bad arguments and unusable addresses with errno errors', async () => {
    const cases: Array<[() => Promise<number>, Record<string, unknown>]> = [
      [() => icmpEcho(w.a.name, 'nope', '10.231.0.2', { timeoutMs: 100 }), { code: 'EINVAL', path: 'nope' }],
      [() => icmpEcho(w.a.name, '10.231.0.1', '10.231.0.2/33', { timeoutMs: 100 }), { code: 'EINVAL' }],
      [() => icmpEcho(w.a.name, '10.231.0.1', 'fd77::2', { timeoutMs: 100 }), { code: 'EINVAL' }],
      [() => icmpEcho(w.a.name, '10.231.0.1', '10.231.0.2', { timeoutMs: 0 }), { code: 'EINVAL' }],
      [() => icmpEcho(w.a.name, '10.231.0.1', '10.231.0.2', { timeoutMs: 100, count: 0 }), { code: 'EINVAL' }],
      // src not an address of the namespace
      [() => icmpEcho(w.a.name, '10.231.0.2', '10.231.0.1', { timeoutMs: 100 }), { code: 'EADDRNOTAVAIL', syscall: 'bind', path: '10.231.0.2' }],
      [() => icmpEcho(w.a.name, 'fd77::5', 'fd77::2', { timeoutMs: 100 }), { code: 'EADDRNOTAVAIL', syscall: 'bind' }],
      // no route (the namespaces have no default route)
      [() => icmpEcho(w.a.name, '10.231.0.1', '203.0.113.9', { timeoutMs: 100 }), { code: 'ENETUNREACH', syscall: 'sendto', path: '203.0.113.9' }],
      [() => icmpEcho(w.a.name, 'fd77::1', '2001:db8::9', { timeoutMs: 100 }), { code: 'ENETUNREACH', syscall: 'sendto' }],
      // no such namespace
      [() => icmpEcho('nsmt-icmp-missing', '10.231.0.1', '10.231.0.2', { timeoutMs: 100 }), { code: 'ENOENT', path: '/run/netns/nsmt-icmp-missing' }],
    ];
    for (const [call, match] of cases) {
      const err = await call().then(
        (v) => new Error(`resolved ${v}`),
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(SysError);
      expect(err).toMatchObject(match);
    }
    const err = (await icmpEcho(w.a.name, '10.231.0.1', '203.0.113.9', { timeoutMs: 100 }).catch((e: unknown) => e)) as Error;
    expect(err.message).toBe(`ENETUNREACH: network is unreachable, sendto '203.0.113.9': in netns ${w.a.path}`);
  });

  it('runs 50 checks in parallel, each matching only its own replies; leaks no fd or thread namespace', async () => {
    const fdsBefore = readdirSync('/proc/self/fd').length;
    const jobs = Array.from({ length: 50 }, (_, i) => {
      const v6 = i % 2 === 1;
      const fromA = i % 4 < 2;
      const [ns, src, dst] = fromA
        ? [w.a.name, v6 ? 'fd77::1' : '10.231.0.1', v6 ? 'fd77::2' : '10.231.0.2']
        : [w.b.name, v6 ? 'fd77::2' : '10.231.0.2', v6 ? 'fd77::1' : '10.231.0.1'];
      return icmpEcho(ns, src, dst, { timeoutMs: 2000 });
    });
    const results = await Promise.all(jobs);
    expect(results.every((n) => n >= 1)).toBe(true);
    // Dead and live checks side by side: the dead ones do not see the live ones' replies.
    const mixed = await Promise.all([
      ...Array.from({ length: 4 }, () => icmpEcho(w.a.name, '10.231.0.1', '10.231.0.99', { timeoutMs: 300 })),
      ...Array.from({ length: 8 }, () => icmpEcho(w.a.name, '10.231.0.1', '10.231.0.2', { timeoutMs: 2000 })),
    ]);
    expect(mixed.slice(0, 4)).toEqual([0, 0, 0, 0]);
    expect(mixed.slice(4).every((n) => n >= 1)).toBe(true);
    // Sockets and dup'ed namespace fds are closed; every thread (the libuv pool's
    // included) is back in the agent's namespace.
    expect(readdirSync('/proc/self/fd').length).toBe(fdsBefore);
    const home = readlinkSync('/proc/self/ns/net');
    for (const task of readdirSync('/proc/self/task')) {
      expect(readlinkSync(`/proc/self/task/${task}/ns/net`), `thread ${task}`).toBe(home);
    }
  });

  it('peer link down: 0 replies within the timeout; up again: replies', async () => {
    await setLinkUp(Rtnl.for(w.b), w.pair.b.index, false);
    try {
      for (const [src, dst] of [
        ['10.231.0.1', '10.231.0.2'],
        ['fd77::1', 'fd77::2'],
      ] as const) {
        const { value, ms } = await timed(() => icmpEcho(w.a.name, src, dst, { timeoutMs: 200 }));
        expect(value, `${src} -> ${dst}`).toBe(0);
        expect(ms).toBeGreaterThanOrEqual(195);
        expect(ms).toBeLessThan(200 + SLACK_MS);
      }
    } finally {
      await setLinkUp(Rtnl.for(w.b), w.pair.b.index, true);
    }
    expect(await icmpEcho(w.a.name, '10.231.0.1', '10.231.0.2', { timeoutMs: 2000 })).toBeGreaterThanOrEqual(1);
  });
});

describe.skipIf(!root)('kernelLivenessCheck', () => {
  const tmp = tempNetns('live');
  let w: Wire;

  beforeAll(async () => {
    w = await wire(tmp, '');
  });
  afterAll(async () => {
    await tmp.cleanup();
    Rtnl.closeAll();
  });

  const conn = (src: string[], dst: string[]): Connection => ({
    id: 'c1',
    context: { ip_context: { src_ip_addrs: src, dst_ip_addrs: dst } },
  });

  it('alive when every same-family pair answers', async () => {
    const check = kernelLivenessCheck({ netnsOf: () => w.a.name });
    const { value, ms } = await timed(() => check(conn(['10.231.0.1/24', 'fd77::1/64'], ['10.231.0.2/24', 'fd77::2/64'])));
    expect(value).toBe(true);
    expect(ms).toBeLessThan(100);
  });

  it('dead when one pair gets no reply, within the timeout', async () => {
    const check = kernelLivenessCheck({ netnsOf: () => w.a.name, timeoutMs: 150 });
    const { value, ms } = await timed(() =>
      check(conn(['10.231.0.1/24', 'fd77::1/64'], ['10.231.0.2/24', 'fd77::2/64', '10.231.0.99/24'])),
    );
    expect(value).toBe(false);
    expect(ms).toBeLessThan(150 + SLACK_MS);
  });

  it('dead when a pair fails (no route) or the namespace is gone', async () => {
    const check = kernelLivenessCheck({ netnsOf: () => w.a.name });
    expect(await check(conn(['10.231.0.1/24'], ['203.0.113.9/32']))).toBe(false);
    const gone = kernelLivenessCheck({ netnsOf: () => 'nsmt-live-missing' });
    expect(await gone(conn(['10.231.0.1/24'], ['10.231.0.2/24']))).toBe(false);
  });

  it('alive when there is nothing to check', async () => {
    const check = kernelLivenessCheck({ netnsOf: () => w.a.name });
    expect(await check({ id: 'c1' })).toBe(true);
    expect(await check(conn([], ['10.231.0.2/24']))).toBe(true);
    expect(await check(conn(['10.231.0.1/24'], []))).toBe(true);
    expect(await check(conn(['10.231.0.1/24'], ['fd77::2/64']))).toBe(true); // no same-family pair
    expect(await check(conn(['garbage'], ['10.231.0.2/24']))).toBe(true); // unparsable: skipped
    const noNetns = kernelLivenessCheck({ netnsOf: () => undefined });
    expect(await noNetns(conn(['10.231.0.1/24'], ['203.0.113.9/32']))).toBe(true);
  });
});
