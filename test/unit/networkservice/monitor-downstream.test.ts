/**
 * monitorDownstreamClient: a hop's client chain to remote hops (updatepath stands in for the
 * server chain's own segment, a URL element for discover) in front of in-process next hops,
 * one per URL, whose MonitorHubs stand in for their MonitorConnections.
 */
import { describe, it, expect } from 'vitest';
import type { Connection, ConnectionEvent, MonitorScopeSelector } from '../../../src/api';
import { AgentError } from '../../../src/core/errors';
import { chainClient, chainServer, nextClient, NetworkServiceClient, NetworkServiceServer } from '../../../src/core/networkservice';
import { updatePathClient, updatePathServer } from '../../../src/networkservice/updatepath';
import { beginServer } from '../../../src/networkservice/begin';
import { metadataServer } from '../../../src/networkservice/metadata';
import { clientURL, withClientURL } from '../../../src/networkservice/clienturl';
import { MonitorHub, monitorServer, monitorDownstreamClient, MonitorDownstreamOptions } from '../../../src/networkservice/monitor';
import { failOn, fakeCtx, recorder } from './helpers';

const URL1 = 'tcp://10.0.0.1:5001';
const URL2 = 'tcp://10.0.0.2:5001';

interface Stream {
  url: string;
  selector: MonitorScopeSelector;
  onEvent: (e: ConnectionEvent) => void;
  onError: (err: AgentError) => void;
  open: boolean;
  off: () => void;
}

interface Peer {
  hub: MonitorHub;
  chain: NetworkServiceServer;
  rec: ReturnType<typeof recorder>;
  fail: ReturnType<typeof failOn>;
}

function setup() {
  const { ctx } = fakeCtx();
  const order: string[] = [];
  const peers = new Map<string, Peer>();
  /** Request numbers (1-based) the peer at URL1 fails. */
  const failures: number[] = [];
  for (const [i, url] of [URL1, URL2].entries()) {
    const hub = new MonitorHub();
    const rec = recorder();
    const fail = failOn(i === 0 ? failures : []);
    const chain = chainServer(updatePathServer(`peer${i + 1}`), beginServer(), metadataServer(), monitorServer(hub), fail, rec);
    peers.set(url, { hub, chain, rec, fail });
  }
  const target = { url: URL1 };
  /** Stands in for discover: the next hop's URL. */
  const select: NetworkServiceClient = {
    request: (c, req) => nextClient(c).request(withClientURL(c, target.url), req),
    close: (c, conn) => nextClient(c).close(withClientURL(c, target.url), conn),
  };
  /** Stands in for dial: the peer at the URL. */
  const dial: NetworkServiceClient = {
    request: (c, req) => peers.get(clientURL(c)!.href.replace(/\/$/, ''))!.chain.request(c, req),
    close: (c, conn) => {
      order.push(`close sent to ${clientURL(c)!.host}`);
      return peers.get(clientURL(c)!.href.replace(/\/$/, ''))!.chain.close(c, conn);
    },
  };
  const streams: Stream[] = [];
  const monitor: MonitorDownstreamOptions['monitor'] = (_ctx, url, selector, onEvent, onError) => {
    const s: Stream = { url: url.href.replace(/\/$/, ''), selector: structuredClone(selector), onEvent, onError, open: true, off: () => {} };
    streams.push(s);
    s.off = peers.get(s.url)!.hub.subscribe(selector, onEvent);
    return () => {
      order.push(`stream to ${url.host} stopped`);
      s.open = false;
      s.off();
    };
  };
  const downs: [string, string][] = [];
  const refreshes: string[] = [];
  const el = monitorDownstreamClient({ monitor, onDown: (id, why) => downs.push([id, why]), onRefresh: (id) => refreshes.push(id) });
  const chain = chainClient(updatePathClient('agent'), select, el, dial);
  const open = () => streams.filter((s) => s.open);
  const peerConn = (url = URL1) => {
    const c = peers.get(url)!.hub.connections()[0];
    if (!c) throw new Error(`no connection at ${url}`);
    return c;
  };
  return { ctx, chain, el, peers, target, streams, open, downs, refreshes, order, peerConn, failures };
}

describe('monitorDownstreamClient', () => {
  it('watches each connection on the URL its Request went to, selecting the segment the next hop sees as previous', async () => {
    const t = setup();
    const conn = await t.chain.request(t.ctx, { connection: { id: 'c1' } });
    await t.chain.request(t.ctx, { connection: { id: 'c2' } });
    expect(t.open().map((s) => [s.url, s.selector])).toEqual([
      [URL1, { path_segments: [{ id: 'c1', name: 'agent' }] }],
      [URL1, { path_segments: [{ id: 'c2', name: 'agent' }] }],
    ]);
    await t.chain.request(t.ctx, { connection: conn }); // a refresh keeps the stream
    expect(t.streams).toHaveLength(2);
    expect(t.el.watching('c1')).toBe(true);
    expect(t.downs).toEqual([]);
  });

  it('DOWN from the next hop: onDown once, the stream ends; the next successful Request watches again', async () => {
    const t = setup();
    const conn = await t.chain.request(t.ctx, { connection: { id: 'c1' } });
    t.peers.get(URL1)!.hub.update({ ...t.peerConn(), state: 'DOWN' });
    expect(t.downs).toEqual([['c1', 'downstream connection is down']]);
    expect(t.open()).toHaveLength(0);
    expect(t.el.watching('c1')).toBe(false);
    t.peers.get(URL1)!.hub.update({ ...t.peerConn(), state: 'DOWN' });
    expect(t.downs).toHaveLength(1);
    // The heal from upstream re-Requests: watched again.
    await t.chain.request(t.ctx, { connection: conn });
    expect(t.open()).toHaveLength(1);
    expect(t.el.watching('c1')).toBe(true);
  });

  it('REFRESH_REQUESTED from the next hop: onRefresh for the connection, the stream goes on', async () => {
    const t = setup();
    await t.chain.request(t.ctx, { connection: { id: 'c1' } });
    await t.chain.request(t.ctx, { connection: { id: 'c2' } });
    const hub = t.peers.get(URL1)!.hub;
    const c1 = hub.connections().find((c) => c.path?.path_segments?.[0]?.id === 'c1')!;
    expect(hub.refreshRequested(c1.id!)).toBe(true);
    expect(t.refreshes).toEqual(['c1']);
    expect(t.downs).toEqual([]);
    expect(t.el.watching('c1')).toBe(true);
    expect(hub.get(c1.id!)?.state).not.toBe('REFRESH_REQUESTED'); // the hub keeps the connection as it was
    expect(hub.refreshRequested('nobody')).toBe(false);
    expect(t.refreshes).toEqual(['c1']);
  });

  it('DELETE from the next hop (it closed the connection by itself) is DOWN', async () => {
    const t = setup();
    await t.chain.request(t.ctx, { connection: { id: 'c1' } });
    t.peers.get(URL1)!.hub.delete(t.peerConn());
    expect(t.downs).toEqual([['c1', 'downstream closed the connection']]);
  });

  it('a broken stream is DOWN; a CANCELLED one is not; nothing after Close', async () => {
    const t = setup();
    const c1 = await t.chain.request(t.ctx, { connection: { id: 'c1' } });
    const c2 = await t.chain.request(t.ctx, { connection: { id: 'c2' } });
    const [s1, s2] = t.open();
    s1!.onError(new AgentError('UNAVAILABLE', 'connection reset'));
    expect(t.downs).toEqual([['c1', 'monitor stream to 10.0.0.1:5001 broke: connection reset']]);
    expect(s1!.open).toBe(false); // ended on our side too
    s2!.onError(new AgentError('CANCELLED', 'cancelled'));
    expect(t.downs).toHaveLength(1);
    expect(t.el.watching('c2')).toBe(false);
    await t.chain.request(t.ctx, { connection: c2 });
    expect(t.el.watching('c2')).toBe(true);
    const s3 = t.open().find((s) => s.selector.path_segments![0]!.id === 'c2')!;
    await t.chain.close(t.ctx, c2);
    s3.onError(new AgentError('UNAVAILABLE', 'late')); // a misbehaving stream after Close
    s3.onEvent({ type: 'DELETE', connections: { x: { ...c2, state: 'DOWN' } } });
    expect(t.downs).toHaveLength(1);
    await t.chain.close(t.ctx, c1);
    expect(t.el.size).toBe(0);
  });

  it('Close ends the stream before passing on, so the DELETE it causes is not reported', async () => {
    const t = setup();
    const conn = await t.chain.request(t.ctx, { connection: { id: 'c1' } });
    await t.chain.close(t.ctx, conn);
    expect(t.order).toEqual(['stream to 10.0.0.1:5001 stopped', 'close sent to 10.0.0.1:5001']);
    expect(t.peers.get(URL1)!.rec.closes).toHaveLength(1);
    expect(t.downs).toEqual([]);
    expect(t.el.size).toBe(0);
    expect(t.peers.get(URL1)!.hub.subscribers).toBe(0);
  });

  it('a Request that went to another URL (reselect to another host) moves the stream there', async () => {
    const t = setup();
    const conn = await t.chain.request(t.ctx, { connection: { id: 'c1' } });
    t.target.url = URL2;
    await t.chain.request(t.ctx, { connection: conn });
    expect(t.open().map((s) => s.url)).toEqual([URL2]);
    expect(t.peers.get(URL1)!.hub.subscribers).toBe(0);
    t.peers.get(URL1)!.hub.update({ ...t.peerConn(URL1), state: 'DOWN' }); // the old host: not watched
    expect(t.downs).toEqual([]);
    t.peers.get(URL2)!.hub.update({ ...t.peerConn(URL2), state: 'DOWN' });
    expect(t.downs).toEqual([['c1', 'downstream connection is down']]);
  });

  it('ignores events about other connections', async () => {
    const t = setup();
    const conn = await t.chain.request(t.ctx, { connection: { id: 'c1' } });
    const s = t.open()[0]!;
    const other: Connection = { id: 'p', state: 'DOWN', path: { index: 1, path_segments: [{ name: 'agent', id: 'c9' }, { name: 'peer1', id: 'p' }] } };
    const far: Connection = { id: 'q', state: 'DOWN', path: { index: 3, path_segments: [{ name: 'agent', id: 'c1' }, {}, {}, {}] } };
    s.onEvent({ type: 'UPDATE', connections: { p: other, q: far } });
    s.onEvent({ type: 'DELETE', connections: { p: other } });
    expect(t.downs).toEqual([]);
    expect(t.el.watching('c1')).toBe(true);
    await t.chain.close(t.ctx, conn);
  });

  it('a failed first Request opens nothing; a failed refresh is reported through the DOWN the next hop sends', async () => {
    const t = setup();
    t.failures.push(1);
    await expect(t.chain.request(t.ctx, { connection: { id: 'c1' } })).rejects.toThrow(/injected/);
    expect(t.streams).toHaveLength(0);
    expect(t.el.size).toBe(0);

    const conn = await t.chain.request(t.ctx, { connection: { id: 'c2' } });
    t.failures.push(3);
    await expect(t.chain.request(t.ctx, { connection: conn })).rejects.toThrow(/injected/);
    expect(t.downs).toEqual([['c2', 'downstream connection is down']]);
    expect(t.open()).toHaveLength(0);
  });

  it('a stream that fails while it is being opened is reported and ended', async () => {
    const { ctx } = fakeCtx();
    const downs: string[] = [];
    let stopped = 0;
    const el = monitorDownstreamClient({
      monitor: (_c, _u, _s, _onEvent, onError) => {
        onError(new AgentError('UNAVAILABLE', 'refused'));
        return () => void stopped++;
      },
      onDown: (id) => downs.push(id),
    });
    const chain = chainClient(updatePathClient('agent'), { request: (c, r) => nextClient(c).request(withClientURL(c, URL1), r), close: (c, x) => nextClient(c).close(withClientURL(c, URL1), x) }, el);
    await chain.request(ctx, { connection: { id: 'c1' } });
    expect(downs).toEqual(['c1']);
    expect(stopped).toBe(1);
    expect(el.watching('c1')).toBe(false);
    expect(el.size).toBe(0);
  });
});
