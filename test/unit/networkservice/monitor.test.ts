import { describe, it, expect } from 'vitest';
import type { Connection, ConnectionEvent, MonitorScopeSelector } from '../../../src/api';
import { Ctx } from '../../../src/core/ctx';
import { chainServer } from '../../../src/core/networkservice';
import { MonitorHub, monitorServer, matchesSelector } from '../../../src/networkservice/monitor';
import { updatePathServer } from '../../../src/networkservice/updatepath';
import { failOn } from './helpers';

const conn = (id: string, ns: string, ...names: string[]): Connection => ({
  id,
  network_service: ns,
  path: { index: 0, path_segments: names.map((n, i) => ({ name: n, id: `${n}-id`, token: i === 0 ? 't0' : '' })) },
});

function collect(hub: MonitorHub, selector: MonitorScopeSelector | null): ConnectionEvent[] {
  const events: ConnectionEvent[] = [];
  hub.subscribe(selector, (e) => events.push(e));
  return events;
}

describe('MonitorHub', () => {
  it('sends an initial transfer (even empty), then matching updates and deletes', () => {
    const hub = new MonitorHub();
    hub.update(conn('a', 'ns1', 'nsc', 'mgr'));
    const all = collect(hub, {});
    const ns2 = collect(hub, { network_services: ['ns2'] });
    expect(all[0]).toEqual({ type: 'INITIAL_STATE_TRANSFER', connections: { a: conn('a', 'ns1', 'nsc', 'mgr') } });
    expect(ns2).toEqual([{ type: 'INITIAL_STATE_TRANSFER', connections: {} }]);

    hub.update(conn('b', 'ns2', 'nsc', 'mgr'));
    hub.update(conn('a', 'ns1', 'nsc', 'mgr', 'nse'));
    hub.delete(conn('b', 'ns2', 'nsc', 'mgr'));
    expect(all.slice(1).map((e) => [e.type, Object.keys(e.connections ?? {})])).toEqual([
      ['UPDATE', ['b']],
      ['UPDATE', ['a']],
      ['DELETE', ['b']],
    ]);
    // Events without a matching connection are not sent.
    expect(ns2.slice(1).map((e) => e.type)).toEqual(['UPDATE', 'DELETE']);
    expect(ns2[2]!.connections!['b']!.state).toBe('DOWN');
    expect(hub.connections().map((c) => c.id)).toEqual(['a']);
  });

  it('stops delivering after unsubscribe, and drops a subscriber that throws', () => {
    const hub = new MonitorHub();
    const events: ConnectionEvent[] = [];
    const off = hub.subscribe({}, (e) => events.push(e));
    hub.subscribe({}, () => {
      throw new Error('stream gone');
    });
    expect(hub.subscribers).toBe(1);
    off();
    hub.update(conn('a', 'ns', 'nsc'));
    expect(events).toHaveLength(1);
    expect(hub.subscribers).toBe(0);
  });

  it('gives subscribers copies', () => {
    const hub = new MonitorHub();
    hub.update(conn('a', 'ns', 'nsc'));
    const events = collect(hub, {});
    events[0]!.connections!['a']!.network_service = 'changed';
    expect(hub.get('a')!.network_service).toBe('ns');
  });
});

describe('MonitorHub refreshes', () => {
  const states = (events: ConnectionEvent[]) => events.map((e) => `${e.type}:${Object.values(e.connections ?? {}).map((c) => c.state ?? '').join(',')}`);

  it('keeps a refresh pending until the next UPDATE: a later subscriber sees it in its initial transfer', () => {
    const hub = new MonitorHub();
    hub.update({ ...conn('a', 'ns1', 'nsc', 'mgr'), state: 'UP' });
    const early = collect(hub, {});
    expect(hub.refreshRequested('a')).toBe(true);
    expect(states(early)).toEqual(['INITIAL_STATE_TRANSFER:UP', 'UPDATE:REFRESH_REQUESTED']);
    expect(hub.get('a')?.state).toBe('UP');
    expect(states(collect(hub, {}))).toEqual(['INITIAL_STATE_TRANSFER:REFRESH_REQUESTED']);
    hub.update({ ...conn('a', 'ns1', 'nsc', 'mgr'), state: 'UP' }); // the client Requested again
    expect(states(collect(hub, {}))).toEqual(['INITIAL_STATE_TRANSFER:UP']);
  });

  it('with waitMs, asks for a connection not stored yet right after the UPDATE that stores it, within the wait only', () => {
    let now = 1_000;
    const hub = new MonitorHub(() => now);
    const events = collect(hub, {});
    expect(hub.refreshRequested('a')).toBe(false);
    expect(hub.refreshRequested('b', 5_000)).toBe(false);
    expect(hub.refreshRequested('c', 5_000)).toBe(false);
    expect(hub.refreshRequested('d', 5_000)).toBe(false);
    hub.update({ ...conn('a', 'ns1', 'nsc', 'mgr'), state: 'UP' });
    hub.update({ ...conn('b', 'ns1', 'nsc', 'mgr'), state: 'UP' });
    hub.delete(conn('c', 'ns1', 'nsc', 'mgr'));
    hub.update({ ...conn('c', 'ns1', 'nsc', 'mgr'), state: 'UP' });
    now += 6_000;
    hub.update({ ...conn('d', 'ns1', 'nsc', 'mgr'), state: 'UP' });
    expect(events.slice(1).map((e) => `${Object.keys(e.connections ?? {})}:${states([e])}`)).toEqual([
      'a:UPDATE:UP',
      'b:UPDATE:UP',
      'b:UPDATE:REFRESH_REQUESTED',
      'c:DELETE:DOWN',
      'c:UPDATE:UP',
      'd:UPDATE:UP',
    ]);
  });
});

describe('matchesSelector', () => {
  const c = conn('a', 'ns1', 'nsc', 'mgr', 'fwd', 'nse');
  it.each<[string, MonitorScopeSelector, boolean]>([
    ['empty selector', {}, true],
    ['network service listed', { network_services: ['x', 'ns1'] }, true],
    ['network service not listed', { network_services: ['x'] }, false],
    ['one segment by id', { path_segments: [{ id: 'fwd-id' }] }, true],
    ['contiguous run', { path_segments: [{ name: 'mgr' }, { id: 'fwd-id' }] }, true],
    ['wildcard in the middle', { path_segments: [{ name: 'mgr' }, {}, { name: 'nse' }] }, true],
    ['not contiguous', { path_segments: [{ name: 'nsc' }, { name: 'fwd' }] }, false],
    ['token must match when given', { path_segments: [{ name: 'nsc', token: 'other' }] }, false],
    ['token matches', { path_segments: [{ name: 'nsc', token: 't0' }] }, true],
    ['longer than the path', { path_segments: [{}, {}, {}, {}, {}] }, false],
    ['service and path both needed', { network_services: ['ns1'], path_segments: [{ name: 'nope' }] }, false],
  ])('%s', (_name, selector, want) => {
    expect(matchesSelector(c, selector)).toBe(want);
  });
});

describe('monitor server', () => {
  it('publishes UPDATE on success, DOWN when a refresh fails, DELETE on Close', async () => {
    const hub = new MonitorHub();
    const events = collect(hub, {});
    const chain = chainServer(updatePathServer('nse'), monitorServer(hub), failOn([2, 3]));
    const ctx = Ctx.background();
    const c = await chain.request(ctx, { connection: { id: 'c1', network_service: 'ns' } });
    await expect(chain.request(ctx, { connection: c })).rejects.toBeTruthy();
    await expect(chain.request(ctx, { connection: { id: 'new', network_service: 'ns' } })).rejects.toBeTruthy();
    await chain.close(ctx, c);
    expect(events.map((e) => [e.type, Object.values(e.connections ?? {})[0]?.state ?? null])).toEqual([
      ['INITIAL_STATE_TRANSFER', null],
      ['UPDATE', null],
      ['UPDATE', 'DOWN'],
      ['DELETE', 'DOWN'],
    ]);
    expect(Object.keys(events[1]!.connections!)).toEqual(['c1']);
    expect(hub.connections()).toEqual([]);
  });
});
