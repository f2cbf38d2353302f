/**
 * heal client: an NSC-like client chain (updatepath → begin → metadata → refresh → heal)
 * calling an in-process next hop (updatepath → begin → metadata → monitor(hub) → ...) whose
 * MonitorHub stands in for the hop's MonitorConnections. The data plane is a fake liveness
 * function; time is a FakeClock.
 */
import { describe, it, expect } from 'vitest';
import type { Connection, ConnectionEvent, MonitorScopeSelector, NetworkServiceRequest } from '../../../src/api';
import { FakeClock } from '../../../src/core/clock';
import { Ctx } from '../../../src/core/ctx';
import { AgentError } from '../../../src/core/errors';
import { createLogger } from '../../../src/core/log';
import { chainClient, chainServer, nextServer, serverToClient, NetworkServiceServer } from '../../../src/core/networkservice';
import { updatePathClient, updatePathServer } from '../../../src/networkservice/updatepath';
import { beginClient, beginServer } from '../../../src/networkservice/begin';
import { metadataClient, metadataServer } from '../../../src/networkservice/metadata';
import { refreshClient } from '../../../src/networkservice/refresh';
import { MonitorHub, monitorServer } from '../../../src/networkservice/monitor';
import { healClient, HealOptions, type HealReport } from '../../../src/networkservice/heal';
import { expireAll, flush, recorder } from './helpers';

const LIFETIME = 600_000; // refresh after 2 minutes: out of the way of these tests

interface Stream {
  selector: MonitorScopeSelector;
  onEvent: (e: ConnectionEvent) => void;
  onError: (err: AgentError) => void;
  open: boolean;
  off: () => void;
}

/**
 * The next hop's tail: fails while `failing` > 0, records what passes (in `seen`, in order,
 * with Closes), and picks an endpoint and a mechanism when the request has none (nse-1, nse-2...).
 */
function endpoint(clock: FakeClock): NetworkServiceServer & { failing: number; hold: Promise<void> | undefined; attempts: NetworkServiceRequest[]; seen: string[]; requests: NetworkServiceRequest[] } {
  let n = 0;
  const el = {
    failing: 0,
    /** While set, each Request waits for it before anything else. */
    hold: undefined as Promise<void> | undefined,
    attempts: [] as NetworkServiceRequest[],
    requests: [] as NetworkServiceRequest[],
    seen: [] as string[],
    async request(ctx: Ctx, req: NetworkServiceRequest): Promise<Connection> {
      if (el.hold) await el.hold;
      el.attempts.push(structuredClone(req));
      if (el.failing > 0) {
        el.failing--;
        throw new AgentError('UNAVAILABLE', 'next hop down');
      }
      el.requests.push(structuredClone(req));
      const c = structuredClone(req.connection ?? {});
      el.seen.push(`request state=${c.state ?? ''} nse=${c.network_service_endpoint_name ?? ''}`);
      if (!c.network_service_endpoint_name) c.network_service_endpoint_name = `nse-${++n}`;
      if (!c.mechanism) c.mechanism = { cls: 'LOCAL', type: 'KERNEL', parameters: { name: `nsm-${n}` } };
      const out = await nextServer(ctx).request(ctx, { ...req, connection: c });
      return expireAll(() => clock.now() + LIFETIME)(out);
    },
    async close(ctx: Ctx, conn: Connection): Promise<void> {
      el.seen.push(`close nse=${conn.network_service_endpoint_name ?? ''}`);
      await nextServer(ctx).close(ctx, conn);
    },
  };
  return el;
}

function setup(opts: { liveness?: boolean; retry?: HealOptions['retry']; onHeal?: HealOptions['onHeal']; observe?: HealOptions['observe'] } = {}) {
  const clock = new FakeClock();
  const lines: string[] = [];
  const log = createLogger({ level: 'debug', write: (l) => lines.push(l) });
  const ctx = Ctx.background({ clock, log });
  const hub = new MonitorHub();
  const ep = endpoint(clock);
  const nextHop = chainServer(updatePathServer('mgr'), beginServer(), metadataServer(), monitorServer(hub), ep);

  const streams: Stream[] = [];
  const monitor: HealOptions['monitor'] = (_ctx, selector, onEvent, onError) => {
    const s: Stream = { selector: structuredClone(selector), onEvent, onError, open: true, off: () => {} };
    streams.push(s);
    s.off = hub.subscribe(selector, onEvent);
    return () => {
      s.open = false;
      s.off();
    };
  };
  const data = { alive: true, checks: [] as Connection[] };
  const liveness = async (conn: Connection) => {
    data.checks.push(structuredClone(conn));
    return data.alive;
  };
  const heal = healClient({
    monitor,
    ...(opts.liveness === false ? {} : { liveness }),
    retry: opts.retry,
    ...(opts.onHeal ? { onHeal: opts.onHeal } : {}),
    ...(opts.observe ? { observe: opts.observe } : {}),
  });
  const chain = chainClient(updatePathClient('nsc'), beginClient(), metadataClient(), refreshClient(), heal, serverToClient(nextHop));

  const open = () => streams.filter((s) => s.open);
  /** The next hop's own record of the connection (keyed by its id). */
  const hopConn = (id = 'c1') => {
    const c = hub.connections().find((x) => x.path?.path_segments?.[0]?.id === id);
    if (!c) throw new Error(`the next hop has no connection for ${id}`);
    return c;
  };
  /** The next hop reports the connection DOWN (e.g. its own downstream broke). */
  const down = (id = 'c1') => hub.update({ ...hopConn(id), state: 'DOWN' });
  /** The stream breaks (the next hop died, ...). */
  const breakStreams = (code: AgentError['code'] = 'UNAVAILABLE') => {
    for (const s of open()) {
      s.open = false;
      s.off();
      s.onError(new AgentError(code, 'stream broke'));
    }
  };
  const advance = async (ms: number) => {
    clock.advance(ms);
    await flush();
  };
  const logged = (msg: string) => lines.filter((l) => l.includes(`msg="${msg}"`));
  return { clock, ctx, hub, ep, chain, heal, streams, open, hopConn, down, breakStreams, advance, data, logged };
}

const request = (t: ReturnType<typeof setup>, id = 'c1') =>
  t.chain.request(t.ctx, { connection: { id, network_service: 'ns' } });

describe('heal client', () => {
  it('opens one monitor stream per connection, selecting its own segment, kept across refreshes', async () => {
    const t = setup();
    const conn = await request(t);
    expect(t.open()).toHaveLength(1);
    expect(t.open()[0]!.selector).toEqual({ path_segments: [{ id: 'c1', name: 'nsc' }] });
    await t.chain.request(t.ctx, { connection: conn }); // a re-Request: no second stream
    expect(t.streams).toHaveLength(1);
    expect(t.heal.size).toBe(1);
    await t.chain.close(t.ctx, conn);
  });

  it('DOWN with a live data plane: re-Request without reselect, same endpoint and mechanism', async () => {
    const t = setup();
    const conn = await request(t);
    expect(conn.network_service_endpoint_name).toBe('nse-1');
    t.down();
    await flush();
    expect(t.ep.seen).toEqual(['request state= nse=', 'request state=UP nse=nse-1']);
    const again = t.ep.requests[1]!.connection!;
    expect(again.mechanism).toEqual({ cls: 'LOCAL', type: 'KERNEL', parameters: { name: 'nsm-1' } });
    expect(again.network_service_endpoint_name).toBe('nse-1');
    expect(t.data.checks).toHaveLength(1); // the decision asked the data plane once
    expect(t.heal.healing('c1')).toBe(false);
    // The stream was closed for the heal and opened again after it.
    expect(t.streams).toHaveLength(2);
    expect(t.open()).toHaveLength(1);
    expect(t.logged('heal: starting')[0]).toContain('trigger="connection down"');
    expect(t.logged('heal: recovered')[0]).toMatch(/tookMs=0 .*reselected=false/);
    await t.chain.close(t.ctx, conn);
  });

  it('DOWN with a dead data plane: Close, then a Request with RESELECT_REQUESTED and no endpoint', async () => {
    const t = setup();
    const conn = await request(t);
    t.data.alive = false;
    t.down();
    await flush();
    t.data.alive = true;
    expect(t.ep.seen).toEqual(['request state= nse=', 'close nse=nse-1', 'request state=RESELECT_REQUESTED nse=']);
    expect(t.ep.requests[1]!.connection!.mechanism ?? null).toBeNull();
    // The chain holds the reselected connection: the caller's next re-Request goes to nse-2.
    const after = await t.chain.request(t.ctx, { connection: conn });
    expect(after.network_service_endpoint_name).toBe('nse-2');
    expect(t.logged('heal: recovered')[0]).toContain('reselected=true');
    await t.chain.close(t.ctx, after);
    expect(t.clock.pending()).toBe(0);
  });

  it('without a liveness check every heal reselects', async () => {
    const t = setup({ liveness: false });
    await request(t);
    t.down();
    await flush();
    expect(t.ep.seen).toEqual(['request state= nse=', 'close nse=nse-1', 'request state=RESELECT_REQUESTED nse=']);
    expect(t.clock.pending()).toBe(1); // refresh only: no liveness timer
  });

  it('a broken stream heals; a DELETE from the next hop heals; a CANCELLED stream does not', async () => {
    const t = setup();
    const conn = await request(t);
    t.breakStreams('UNAVAILABLE');
    await flush();
    expect(t.ep.seen).toEqual(['request state= nse=', 'request state=UP nse=nse-1']);
    expect(t.logged('heal: starting')[0]).toContain('trigger="monitor stream broke"');
    expect(t.open()).toHaveLength(1);

    // The next hop closed the connection by itself (its timeout): DELETE counts as DOWN.
    t.hub.delete(t.hopConn());
    await flush();
    expect(t.ep.requests).toHaveLength(3);
    expect(t.open()).toHaveLength(1);

    t.breakStreams('CANCELLED');
    await flush();
    expect(t.ep.requests).toHaveLength(3);
    expect(t.heal.healing('c1')).toBe(false);
    expect(t.open()).toHaveLength(0);
    // The next successful Request opens it again.
    await t.chain.request(t.ctx, { connection: conn });
    expect(t.open()).toHaveLength(1);
    await t.chain.close(t.ctx, conn);
  });

  it('a failing liveness check alone heals with reselect; checks run every 200 ms, one at a time', async () => {
    const t = setup();
    await request(t);
    await t.advance(199);
    expect(t.data.checks).toHaveLength(0);
    await t.advance(1);
    expect(t.data.checks).toHaveLength(1);
    await t.advance(200);
    expect(t.data.checks).toHaveLength(2);
    expect(t.data.checks[1]!.network_service_endpoint_name).toBe('nse-1'); // it gets the connection

    t.data.alive = false;
    await t.advance(200);
    expect(t.data.checks).toHaveLength(3); // no second check to decide: it is known dead
    expect(t.ep.seen.slice(1)).toEqual(['close nse=nse-1', 'request state=RESELECT_REQUESTED nse=']);
    expect(t.logged('heal: starting')[0]).toContain('trigger="data plane check failed"');
    t.data.alive = true;
    await t.advance(200);
    expect(t.data.checks).toHaveLength(4); // the checks go on after the heal
    expect(t.data.checks[3]!.network_service_endpoint_name).toBe('nse-2');
  });

  it('a Request already on its way when a heal starts does not end it: the heal still reselects', async () => {
    const t = setup();
    await request(t);
    let release = () => {};
    t.ep.hold = new Promise<void>((resolve) => (release = resolve));
    const refresh = request(t); // another Request of the connection (a refresh) waits at the next hop
    await flush();
    t.data.alive = false;
    await t.advance(200); // the check fails: the heal starts; its reselect waits behind the refresh
    expect(t.logged('heal: starting')).toHaveLength(1);
    t.ep.hold = undefined;
    release();
    await refresh;
    await flush();
    expect(t.ep.seen.slice(1)).toEqual(['request state=UP nse=', 'close nse=nse-2', 'request state=RESELECT_REQUESTED nse=']);
    expect(t.logged('heal: recovered')).toHaveLength(1);
    expect(t.logged('heal: recovered')[0]).toContain('reselected=true');
    t.data.alive = true;
    await t.advance(1_000);
    expect(t.logged('heal: starting')).toHaveLength(1); // healed once, for good
  });

  it('tells its observer once when a heal starts and once when it recovered, with trigger, reselect and time', async () => {
    const events: unknown[][] = [];
    const t = setup({ observe: { started: (trigger) => events.push(['started', trigger]), recovered: (...a) => events.push(['recovered', ...a]) } });
    await request(t);
    t.data.alive = false;
    await t.advance(200);
    t.data.alive = true;
    await t.advance(1_000);
    expect(events).toEqual([
      ['started', 'data plane check failed'],
      ['recovered', 'data plane check failed', true, expect.any(Number)],
    ]);
  });

  it('never runs two checks at once', async () => {
    const t = setup();
    const pending: ((alive: boolean) => void)[] = [];
    let running = 0;
    let most = 0;
    const heal = healClient({
      monitor: () => () => {},
      liveness: () =>
        new Promise<boolean>((resolve) => {
          running++;
          most = Math.max(most, running);
          pending.push((a) => {
            running--;
            resolve(a);
          });
        }),
    });
    const chain = chainClient(updatePathClient('nsc'), beginClient(), metadataClient(), heal, serverToClient(chainServer(updatePathServer('mgr'))));
    const conn = await chain.request(t.ctx, { connection: { id: 'c9' } });
    await t.advance(200);
    await t.advance(1_000); // the first check hangs: no new one starts
    expect(pending).toHaveLength(1);
    pending.shift()!(true);
    await flush();
    await t.advance(200);
    expect(pending).toHaveLength(1);
    expect(most).toBe(1);
    await chain.close(t.ctx, conn);
    pending.shift()!(true);
    await flush();
    expect(t.clock.pending()).toBe(0);
  });

  it('retries with back-off (100 ms doubling to 1 s) while the next hop fails, reselecting each time, then recovers', async () => {
    const t = setup();
    const conn = await request(t);
    t.data.alive = false;
    t.ep.failing = 6;
    t.down();
    await flush();
    expect(t.ep.attempts).toHaveLength(2); // first request + attempt 1
    expect(t.heal.healing('c1')).toBe(true);
    // Attempts at 100, 300, 700, 1500, 2500 ms; the 7th (3500 ms) succeeds.
    let at = 0;
    for (const [when, total] of [[100, 3], [300, 4], [700, 5], [1_500, 6], [2_500, 7], [3_500, 8]] as const) {
      await t.advance(when - at - 1);
      expect(t.ep.attempts).toHaveLength(total - 1);
      await t.advance(1);
      expect(t.ep.attempts).toHaveLength(total);
      at = when;
    }
    // Every attempt asked again without mechanism and endpoint; the downstream was closed once.
    for (const a of t.ep.attempts.slice(1)) {
      expect(a.connection!.state).toBe('RESELECT_REQUESTED');
      expect(a.connection!.network_service_endpoint_name ?? '').toBe('');
    }
    expect(t.ep.seen.filter((s) => s.startsWith('close'))).toHaveLength(1);
    expect(t.data.checks).toHaveLength(1); // the decision; no periodic checks during the heal
    expect(t.heal.healing('c1')).toBe(false);
    expect(t.logged('heal: attempt failed')).toHaveLength(6);
    expect(t.logged('heal: recovered')[0]).toMatch(/tookMs=3500 attempts=7 reselected=true/);
    expect(t.open()).toHaveLength(1);
    t.data.alive = true;
    for (let i = 0; i < 5; i++) await t.advance(200);
    expect(t.data.checks).toHaveLength(6); // checking again
    expect(t.ep.attempts).toHaveLength(8);
    await t.chain.close(t.ctx, conn);
    expect(t.clock.pending()).toBe(0);
  });

  it('retries without reselect while the data plane answers, and reselects once it stops', async () => {
    const t = setup();
    await request(t);
    t.ep.failing = 3;
    t.down();
    await flush();
    await t.advance(100);
    expect(t.ep.attempts.slice(1).map((a) => a.connection!.state)).toEqual(['UP', 'UP']);
    t.data.alive = false;
    await t.advance(200); // attempt 3 (fails) reselects: close first
    await t.advance(400); // attempt 4 succeeds, still reselecting
    expect(t.ep.attempts.slice(3).map((a) => a.connection!.state)).toEqual(['RESELECT_REQUESTED', 'RESELECT_REQUESTED']);
    expect(t.ep.seen.slice(1)).toEqual(['close nse=nse-1', 'request state=RESELECT_REQUESTED nse=']);
    expect(t.heal.healing('c1')).toBe(false);
  });

  it('reports each heal to onHeal: its start, each failed attempt, its recovery; and the Close', async () => {
    const reports: [string, HealReport | undefined][] = [];
    const t = setup({ onHeal: (id, h) => reports.push([id, h && { ...h }]) });
    const conn = await request(t);
    t.clock.advance(1_000);
    t.data.alive = false;
    t.ep.failing = 1;
    t.down();
    await flush();
    await t.advance(100);
    const started = t.clock.now() - 100;
    expect(reports).toEqual([
      ['c1', { trigger: 'connection down', started, attempts: 0, reselected: false }],
      ['c1', { trigger: 'connection down', started, attempts: 1, reselected: true }],
      ['c1', { trigger: 'connection down', started, attempts: 2, reselected: true, recovered: started + 100 }],
    ]);
    await t.chain.close(t.ctx, conn);
    expect(reports.at(-1)).toEqual(['c1', undefined]);
  });

  it('REFRESH_REQUESTED from the next hop refreshes at once, without reselect', async () => {
    const t = setup();
    await request(t);
    t.hub.update({ ...t.hopConn(), state: 'REFRESH_REQUESTED' });
    await flush();
    expect(t.ep.seen).toEqual(['request state= nse=', 'request state=UP nse=nse-1']);
    expect(t.heal.healing('c1')).toBe(false);
    expect(t.logged('heal: starting')).toHaveLength(0);
    expect(t.streams).toHaveLength(1);
  });

  it('Close stops everything: stream, checks, refresh, no pending timer, no further Request', async () => {
    const t = setup();
    const conn = await request(t);
    await t.advance(200);
    await t.chain.close(t.ctx, conn);
    expect(t.open()).toHaveLength(0);
    expect(t.clock.pending()).toBe(0);
    expect(t.heal.size).toBe(0);
    const checks = t.data.checks.length;
    await t.advance(600_000);
    expect(t.data.checks).toHaveLength(checks);
    expect(t.ep.attempts).toHaveLength(1);
  });

  it('Close during a heal (retrying in place) stops its retries at once', async () => {
    const t = setup();
    const conn = await request(t);
    t.ep.failing = 100;
    t.down();
    await flush();
    await t.advance(100);
    expect(t.ep.attempts).toHaveLength(3);
    await t.chain.close(t.ctx, conn);
    expect(t.clock.pending()).toBe(0);
    expect(t.heal.healing('c1')).toBe(false);
    await t.advance(60_000);
    expect(t.ep.attempts).toHaveLength(3);
    expect(t.open()).toHaveLength(0);
  });

  it('Close while a reselect has not succeeded: no further Request, and nothing left after one retry period', async () => {
    const t = setup({ liveness: false });
    const conn = await request(t);
    t.ep.failing = 100;
    t.down();
    await flush();
    expect(t.ep.attempts).toHaveLength(2);
    await t.chain.close(t.ctx, conn); // begin holds it down: the Close does not reach heal
    await t.advance(100); // the retry finds the connection gone
    expect(t.ep.attempts).toHaveLength(2);
    expect(t.clock.pending()).toBe(0);
    expect(t.heal.size).toBe(0);
    expect(t.open()).toHaveLength(0);
  });

  it('a failing first Request leaves nothing behind', async () => {
    const t = setup();
    t.ep.failing = 1;
    await expect(request(t)).rejects.toThrow(/next hop down/);
    expect(t.streams).toHaveLength(0);
    expect(t.heal.size).toBe(0);
    expect(t.clock.pending()).toBe(0);
  });

  it('ignores events about other connections', async () => {
    const t = setup();
    const c1 = await request(t, 'c1');
    const c2 = await request(t, 'c2');
    expect(t.open()).toHaveLength(2);
    t.down('c2');
    await flush();
    expect(t.ep.requests.map((r) => `${r.connection!.path!.path_segments![0]!.id}:${r.connection!.state ?? ''}`)).toEqual(['c1:', 'c2:', 'c2:UP']);
    expect(t.heal.healing('c1')).toBe(false);

    // Handed to c1's stream directly: another id at our index, and our id at an index too far on.
    const s1 = t.open().find((s) => s.selector.path_segments?.[0]?.id === 'c1')!;
    const foreign = { ...t.hopConn('c2'), state: 'DOWN' as const };
    const far: Connection = { id: 'x', state: 'DOWN', path: { index: 3, path_segments: [{ name: 'nsc', id: 'c1' }, {}, {}, {}] } };
    s1.onEvent({ type: 'UPDATE', connections: { a: foreign, b: far } });
    await flush();
    expect(t.ep.requests).toHaveLength(3);
    expect(t.logged('heal: starting')).toHaveLength(1);
    await t.chain.close(t.ctx, c1);
    await t.chain.close(t.ctx, c2);
    expect(t.clock.pending()).toBe(0);
  });

  it('a DOWN delivered while the stream is being opened heals, and that stream is not left open', async () => {
    const t = setup();
    let opened = 0;
    let stopped = 0;
    const heal = healClient({
      monitor: (_c, _sel, onEvent) => {
        if (++opened === 1) {
          const hop: Connection = { id: 'm', state: 'DOWN', path: { index: 1, path_segments: [{ name: 'nsc', id: 'c9' }, { name: 'mgr', id: 'm' }] } };
          onEvent({ type: 'INITIAL_STATE_TRANSFER', connections: { m: hop } });
        }
        return () => void stopped++;
      },
    });
    const rec = recorder();
    const chain = chainClient(updatePathClient('nsc'), beginClient(), metadataClient(), heal, serverToClient(chainServer(updatePathServer('mgr'), rec)));
    const conn = await chain.request(t.ctx, { connection: { id: 'c9' } });
    await flush();
    expect(rec.closes).toHaveLength(1); // no liveness check: reselect
    expect(rec.requests.map((r) => r.connection!.state ?? '')).toEqual(['', 'RESELECT_REQUESTED']);
    expect([opened, stopped]).toEqual([2, 1]);
    expect(heal.healing('c9')).toBe(false);
    await chain.close(t.ctx, conn);
    expect([opened, stopped]).toEqual([2, 2]);
  });

  it('a monitor that cannot be opened does not fail the Request; the next Request tries again', async () => {
    const t = setup();
    let calls = 0;
    const heal = healClient({
      monitor: () => {
        calls++;
        throw new AgentError('INVALID_ARGUMENT', 'cannot dial');
      },
    });
    const chain = chainClient(updatePathClient('nsc'), beginClient(), metadataClient(), heal, serverToClient(chainServer(updatePathServer('mgr'))));
    const conn = await chain.request(t.ctx, { connection: { id: 'c9' } });
    await chain.request(t.ctx, { connection: conn });
    expect(calls).toBe(2);
    expect(heal.healing('c9')).toBe(false);
    await chain.close(t.ctx, conn);
    expect(heal.size).toBe(0);
  });

  it('needs begin before it', async () => {
    const t = setup();
    const chain = chainClient(healClient({ monitor: () => () => {} }));
    await expect(chain.request(t.ctx, { connection: { id: 'c1' } })).rejects.toThrow(/event factory/);
  });
});
