/**
 * The held-connection manager against a fake client chain: connect, retry with back-off,
 * disconnect (held, being retried, or someone else's), resume after a restart, and the record
 * following the connection. Time is a FakeClock; records live in memory.
 */
import { hostname } from 'node:os';
import { describe, it, expect } from 'vitest';
import type { Connection, ConnectionEvent, NetworkServiceRequest } from '../../../src/api';
import { FakeClock } from '../../../src/core/clock';
import { Ctx } from '../../../src/core/ctx';
import { AgentError } from '../../../src/core/errors';
import { silentLogger } from '../../../src/core/log';
import type { NetworkServiceClient } from '../../../src/core/networkservice';
import type { Records } from '../../../src/core/records';
import { HeldConnectionManager, type HeldRecord } from '../../../src/agent/held';
import { flush } from '../networkservice/helpers';

const URL_A = 'kernel://icmp-responder/nsm-1';

/** Records kept in maps: what is stored, and what a "previous run" left unclaimed. */
function memoryRecords<T>(left: [string, T][] = []): Records<T> & { stored: Map<string, T> } {
  const stored = new Map(left);
  const leftovers = new Map(left);
  return {
    stored,
    put: (k, v) => void (stored.set(k, v), leftovers.delete(k)),
    delete: (k) => void (stored.delete(k), leftovers.delete(k)),
    claim: (k) => {
      const v = leftovers.get(k);
      leftovers.delete(k);
      return v;
    },
    leftovers: () => [...leftovers],
  };
}

/** A client chain that answers like the agent's server chain would, or fails while told to. */
function fakeClient() {
  const requests: NetworkServiceRequest[] = [];
  const closes: Connection[] = [];
  let failures = 0;
  let gate: Promise<void> | undefined;
  const client: NetworkServiceClient & { requests: typeof requests; closes: typeof closes; fail(n: number): void; hold(p: Promise<void>): void } = {
    requests,
    closes,
    fail: (n) => void (failures = n),
    hold: (p) => void (gate = p),
    async request(_ctx, req) {
      requests.push(req);
      if (gate) await gate;
      if (failures > 0) {
        failures--;
        throw new AgentError('UNAVAILABLE', 'no endpoint for icmp-responder');
      }
      const id = req.connection?.id ?? '';
      return {
        ...req.connection,
        network_service_endpoint_name: 'nse-1',
        mechanism: { type: 'KERNEL', cls: 'LOCAL', parameters: { name: 'nsm-1' } },
        path: { index: 0, path_segments: [{ id, name: 'host-a-nsc' }, { id: `srv-${id}`, name: 'host-a' }] },
      };
    },
    async close(_ctx, conn) {
      closes.push(conn);
    },
  };
  return client;
}

function setup(opts: { left?: [string, HeldRecord][]; concurrency?: number } = {}) {
  const clock = new FakeClock();
  const client = fakeClient();
  const records = memoryRecords<HeldRecord>(opts.left);
  const life = new AbortController();
  const closedOther: string[] = [];
  const held = new HeldConnectionManager({
    name: 'host-a',
    clock,
    log: silentLogger,
    ctx: () => Ctx.background({ clock, signal: life.signal }),
    signal: life.signal,
    client,
    records,
    closeOther: async (_ctx, id) => {
      if (id !== 'client-1') throw new AgentError('NOT_FOUND', `no connection ${id}`);
      closedOther.push(id);
    },
    concurrency: opts.concurrency,
    retry: { minMs: 200, maxMs: 800 },
  });
  return { clock, client, records, held, life, closedOther };
}

describe('HeldConnectionManager', () => {
  it('holds a connection, records it, and returns it again for the same id, url and netns', async () => {
    const { held, client, records } = setup();
    const h = await held.connect(URL_A, 'host', 'c1');
    expect(h.ifname).toBe('nsm-1');
    expect(client.requests[0]!.connection).toMatchObject({ id: 'c1', network_service: 'icmp-responder' });
    expect(client.requests[0]!.mechanism_preferences?.[0]?.parameters).toMatchObject({ name: 'nsm-1' });
    expect(records.stored.get('c1')).toMatchObject({ url: URL_A, netns: 'host', ifname: 'nsm-1' });
    expect(await held.connect(URL_A, 'host', 'c1')).toBe(h);
    expect(client.requests).toHaveLength(1);
    await expect(held.connect('kernel://other/nsm-2', 'host', 'c1')).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    expect(held.list().map(([id]) => id)).toEqual(['c1']);
  });

  it('names its client in the podName label unless the URL does: namespace, unit, host', async () => {
    const { held, client, records } = setup();
    client.fail(1);
    await expect(held.connect(URL_A, 'app', 'n1', { retry: true })).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(client.requests[0]!.connection?.labels).toEqual({ podName: 'app' });
    // the record kept for the retry asks with it too
    expect(records.stored.get('n1')?.conn.labels).toEqual({ podName: 'app' });
    await held.connect(`${URL_A}?app=x&podName=mine`, '/run/netns/app', 'n2');
    expect(client.requests.at(-1)!.connection?.labels).toEqual({ app: 'x', podName: 'mine' });
    await held.connect(URL_A, 'nsm-web', 'n3', { memberName: 'web' });
    expect(client.requests.at(-1)!.connection?.labels).toEqual({ podName: 'web' });
    await held.connect(URL_A, '/proc/1/ns/net', 'n4');
    expect(client.requests.at(-1)!.connection?.labels ?? {}).toEqual({});
    await held.connect(URL_A, 'host', 'n5');
    expect(client.requests.at(-1)!.connection?.labels?.['podName']).toBe(hostname());
  });

  it('refuses a mechanism other than kernel for local clients', async () => {
    const { held } = setup();
    await expect(held.connect('wireguard://icmp-responder', 'host')).rejects.toMatchObject({ code: 'UNSUPPORTED_MECHANISM' });
  });

  it('without retry keeps nothing of a failed request', async () => {
    const { held, client, records, clock } = setup();
    client.fail(1);
    await expect(held.connect(URL_A, 'host', 'c1')).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    clock.advance(10_000);
    await flush();
    expect(client.requests).toHaveLength(1);
    expect(held.pending()).toEqual([]);
    expect(records.stored.size).toBe(0);
  });

  it('with retry throws the first error, then retries with doubling back-off until it succeeds', async () => {
    const { held, client, records, clock } = setup();
    client.fail(3);
    await expect(held.connect(URL_A, 'ns1', 'c1', { retry: true })).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(held.pending()).toEqual([{ id: 'c1', url: URL_A, netns: 'ns1' }]);
    // Recorded before it is up, so that a restart asks for it again.
    expect(records.stored.get('c1')).toMatchObject({ url: URL_A, netns: 'ns1' });
    await expect(held.connect(URL_A, 'ns1', 'c1')).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await expect(held.connect(URL_A, 'ns2', 'c1')).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });

    const attemptsAt = async (ms: number) => {
      clock.advance(ms);
      await flush();
      return client.requests.length;
    };
    // The first retry and the one after it wait the minimum, then each wait doubles.
    expect(await attemptsAt(199)).toBe(1);
    expect(await attemptsAt(1)).toBe(2); // at 200 ms: fails
    expect(await attemptsAt(199)).toBe(2);
    expect(await attemptsAt(1)).toBe(3); // 200 ms later: fails
    expect(await attemptsAt(399)).toBe(3);
    expect(await attemptsAt(1)).toBe(4); // 400 ms later: succeeds
    expect(held.has('c1')).toBe(true);
    expect(held.pending()).toEqual([]);
    expect(await attemptsAt(10_000)).toBe(4);
  });

  it('disconnect of a connection being retried cancels the retry and forgets its record', async () => {
    const { held, client, records, clock } = setup();
    client.fail(100);
    await held.connect(URL_A, 'host', 'c1', { retry: true }).catch(() => {});
    await held.disconnect('c1');
    clock.advance(60_000);
    await flush();
    expect(client.requests).toHaveLength(1);
    expect(held.pending()).toEqual([]);
    expect(records.stored.has('c1')).toBe(false);
    expect(client.closes).toEqual([]);
  });

  it('disconnect closes a held connection through the client chain, or hands other ids on', async () => {
    const { held, client, records, closedOther } = setup();
    const h = await held.connect(URL_A, 'host', 'c1');
    await held.disconnect('c1');
    expect(client.closes).toEqual([h.conn]);
    expect(held.has('c1')).toBe(false);
    expect(records.stored.has('c1')).toBe(false);
    await held.disconnect('client-1');
    expect(closedOther).toEqual(['client-1']);
    await expect(held.disconnect('nobody')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('asks for a connection of the previous run as it was, and resumes the ones nobody asked for', async () => {
    const previous: HeldRecord = {
      url: URL_A,
      netns: 'host',
      ifname: 'nsm-1',
      created: 42,
      conn: { id: 'old', network_service: 'icmp-responder', network_service_endpoint_name: 'nse-7', path: { index: 0, path_segments: [{ id: 'old', name: 'host-a-nsc' }] } },
    };
    const { held, client } = setup({ left: [['old', previous]] });
    await held.resume();
    expect(client.requests[0]!.connection).toMatchObject({ id: 'old', network_service_endpoint_name: 'nse-7', state: 'UP' });
    expect(held.get('old')?.created).toBe(42);
    await held.resume();
    expect(client.requests).toHaveLength(1);
  });

  it('a previous record under the id but for another url is not replayed', async () => {
    const previous: HeldRecord = { url: 'kernel://other/nsm-9', netns: 'host', ifname: 'nsm-9', created: 42, conn: { id: 'c1', network_service: 'other' } };
    const { held, client } = setup({ left: [['c1', previous]] });
    await held.connect(URL_A, 'host', 'c1');
    expect(client.requests[0]!.connection).toMatchObject({ id: 'c1', network_service: 'icmp-responder' });
    expect(held.get('c1')?.created).not.toBe(42);
  });

  it('follows the server connection into its record when what matters changes, not on a refresh', async () => {
    const { held, records } = setup();
    await held.connect(URL_A, 'host', 'c1');
    const puts: HeldRecord[] = [];
    const put = records.put;
    records.put = (k, v) => (puts.push(v), put(k, v));
    const server = (endpoint: string, expires: number): ConnectionEvent => ({
      type: 'UPDATE',
      connections: {
        'srv-c1': {
          id: 'srv-c1',
          network_service_endpoint_name: endpoint,
          state: 'UP',
          path: { index: 1, path_segments: [{ id: 'c1', name: 'host-a-nsc' }, { id: 'srv-c1', name: 'host-a', expires: { seconds: expires, nanos: 0 } }] },
        },
      },
    });
    held.follow(server('nse-2', 1));
    expect(puts.at(-1)?.conn).toMatchObject({ id: 'c1', network_service_endpoint_name: 'nse-2', path: { index: 0 } });
    held.follow(server('nse-2', 2)); // a refresh: only expiries differ
    expect(puts).toHaveLength(1);
    held.follow({ ...server('nse-3', 3), type: 'DELETE' });
    expect(puts).toHaveLength(1);
  });

  it('runs at most `concurrency` requests at once; the others wait their turn', async () => {
    const { held, client } = setup({ concurrency: 1 });
    let release!: () => void;
    client.hold(new Promise<void>((r) => (release = r)));
    const a = held.connect(URL_A, 'host', 'c1');
    const b = held.connect('kernel://icmp-responder/nsm-2', 'host', 'c2');
    await flush();
    expect(client.requests.map((r) => r.connection?.id)).toEqual(['c1']);
    release();
    await Promise.all([a, b]);
    expect(client.requests.map((r) => r.connection?.id)).toEqual(['c1', 'c2']);
  });

  it('disconnect by the id of another hop closes the held connection through the client chain, and forgets it', async () => {
    const { held, client, records, closedOther } = setup();
    await held.connect(URL_A, 'host', 'c1');
    await held.disconnect('srv-c1');
    expect(client.closes.map((c) => c.id)).toEqual(['c1']);
    expect(closedOther).toEqual([]);
    expect(held.has('c1')).toBe(false);
    expect(records.stored.has('c1')).toBe(false);
  });

  it('stop with cleanup closes every held connection and ends retries', async () => {
    const { held, client, clock } = setup();
    await held.connect(URL_A, 'host', 'c1');
    client.fail(100);
    await held.connect('kernel://icmp-responder/nsm-2', 'host', 'c2', { retry: true }).catch(() => {});
    await held.stop({ cleanup: true });
    expect(client.closes.map((c) => c.id)).toEqual(['c1']);
    clock.advance(60_000);
    await flush();
    expect(client.requests).toHaveLength(2);
    expect(held.pending()).toEqual([]);
  });

  it('sends one request for a connection asked for twice while the first is in flight', async () => {
    const { held, client } = setup();
    let open!: () => void;
    client.hold(new Promise<void>((r) => (open = r)));
    const first = held.connect(URL_A, 'host', 'c1');
    const second = held.connect(URL_A, 'host', 'c1');
    open();
    const [a, b] = await Promise.all([first, second]);
    expect(a).toBe(b);
    expect(client.requests).toHaveLength(1);
  });

  it('pins a connection to an endpoint: asked by name, with its context, kept on reselect, recorded', async () => {
    const { held, client, records } = setup();
    const context = { ip_context: { src_ip_addrs: ['172.16.1.0/32'] } };
    await held.connect('kernel://vl3-app/vl3p-1', 'host', 'mesh-1', { endpoint: 'vl3-host-a', context });
    expect(client.requests[0]!.connection).toMatchObject({ id: 'mesh-1', network_service_endpoint_name: 'vl3-host-a', context });
    expect(held.keepsEndpoint('mesh-1')).toBe(true);
    expect(held.keepsEndpoint('other')).toBe(false);
    expect(records.stored.get('mesh-1')?.endpoint).toBe('vl3-host-a');
    await held.disconnect('mesh-1');
    expect(held.keepsEndpoint('mesh-1')).toBe(false);
  });
});
