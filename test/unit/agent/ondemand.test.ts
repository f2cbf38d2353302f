import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import type { Connection, NetworkServiceRequest } from '../../../src/api';
import { Ctx } from '../../../src/core/ctx';
import { createLogger } from '../../../src/core/log';
import type { EndpointConfig } from '../../../src/agent/config';
import type { EndpointHost, HostedEndpoint } from '../../../src/agent/endpoints';
import { collectDecl } from '../../../src/agent/systemd/declaration';
import { DbusError, type DbusCall } from '../../../src/agent/systemd/dbus';
import { SystemdManager } from '../../../src/agent/systemd/manager';
import { OnDemandUnits, readOnDemandUnits, supplierName } from '../../../src/agent/systemd/ondemand';
import { parseTimeSpan } from '../../../src/agent/systemd/timespan';
import { checkDecl, DEFAULT_IDLE_STOP_MS, onDemandOf } from '../../../src/agent/systemd/units';

const log = createLogger({ level: 'error', write: () => {} });

describe('parseTimeSpan', () => {
  it('reads systemd time spans', () => {
    expect(parseTimeSpan('30')).toBe(30_000);
    expect(parseTimeSpan('30s')).toBe(30_000);
    expect(parseTimeSpan('5min')).toBe(300_000);
    expect(parseTimeSpan('2m 10s')).toBe(130_000);
    expect(parseTimeSpan('1h30min')).toBe(5_400_000);
    expect(parseTimeSpan('500ms')).toBe(500);
    expect(parseTimeSpan('')).toBeUndefined();
    expect(parseTimeSpan('soon')).toBeUndefined();
    expect(parseTimeSpan('5 parsecs')).toBeUndefined();
  });
});

describe('OnDemand= and IdleStopSec=', () => {
  const a = (key: string, value: string, line = 1) => ({ key, value, file: 'p.service', line });
  const decl = (...extra: ReturnType<typeof a>[]) => collectDecl('p.service', [a('Provide', 'svc?app=p'), a('AddressPool', '10.0.0.0/29'), ...extra]);

  it('reads a boolean and a time span, with a default idle time', () => {
    expect(onDemandOf(decl(a('OnDemand', 'yes'), a('IdleStopSec', '30s')))).toEqual({ idleStopMs: 30_000 });
    expect(onDemandOf(decl(a('OnDemand', 'true')))).toEqual({ idleStopMs: DEFAULT_IDLE_STOP_MS });
    expect(onDemandOf(decl(a('OnDemand', 'no')))).toBeUndefined();
    expect(onDemandOf(decl())).toBeUndefined();
  });

  it('refuses what does not fit, naming the unit and key', () => {
    expect(() => decl(a('OnDemand', 'perhaps', 4))).toThrow(/p\.service:4: OnDemand= must be a boolean/);
    expect(() => checkDecl(decl(a('IdleStopSec', '30s')))).toThrow(/p\.service: .*IdleStopSec= without OnDemand=yes/);
    expect(() => checkDecl(decl(a('OnDemand', 'yes'), a('IdleStopSec', 'later')))).toThrow(/IdleStopSec=later is not a time span/);
    expect(() => checkDecl(collectDecl('c.service', [a('Connect', 'kernel://svc/nsm-1'), a('OnDemand', 'yes')]))).toThrow(/c\.service: .*OnDemand=yes without Provide=/);
  });

  it('finds only the units that declare OnDemand=yes in their own files', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nsm-ondemand-'));
    try {
      const put = (name: string, text: string) => writeFileSync(path.join(dir, name), text);
      put('od.service', '[X-NetworkServiceMesh]\nProvide=svc?app=od\nAddressPool=10.0.0.0/29\nOnDemand=yes\nIdleStopSec=3s\n[Service]\nExecStart=/bin/true\n');
      put('plain.service', '[X-NetworkServiceMesh]\nProvide=svc?app=plain\nAddressPool=10.0.1.0/29\n[Service]\nExecStart=/bin/true\n');
      put('broken.service', '[X-NetworkServiceMesh]\nOnDemand=yes\n');
      put('tmpl@.service', '[X-NetworkServiceMesh]\nProvide=svc\nAddressPool=10.0.2.0/29\nOnDemand=yes\n');
      mkdirSync(path.join(dir, 'other.service.d'));
      put('other.service', '[Service]\nExecStart=/bin/true\n');
      put('other.service.d/x.conf', '[X-NetworkServiceMesh]\nProvide=svc2\nAddressPool=10.0.3.0/29\nOnDemand=on\n');
      // masked (an empty fragment, a link to /dev/null): left out, whatever their drop-ins say
      for (const [unit, mask] of [['empty', () => put('empty.service', '')], ['nulled', () => symlinkSync('/dev/null', path.join(dir, 'nulled.service'))]] as const) {
        mask();
        mkdirSync(path.join(dir, `${unit}.service.d`));
        put(`${unit}.service.d/x.conf`, '[X-NetworkServiceMesh]\nProvide=svc3\nAddressPool=10.0.4.0/29\nOnDemand=yes\n');
      }
      // a link to a unit file elsewhere is read through
      const elsewhere = mkdtempSync(path.join(tmpdir(), 'nsm-ondemand-'));
      writeFileSync(path.join(elsewhere, 'linked.service'), '[X-NetworkServiceMesh]\nProvide=svc4\nAddressPool=10.0.5.0/29\nOnDemand=yes\n');
      symlinkSync(path.join(elsewhere, 'linked.service'), path.join(dir, 'linked.service'));
      expect(readOnDemandUnits(log, [`${dir}/`]).map((u) => u.unit)).toEqual(['linked.service', 'od.service', 'other.service']);
      rmSync(elsewhere, { recursive: true, force: true });
      rmSync(path.join(dir, 'linked.service'));
      expect(readOnDemandUnits(log, [dir])).toEqual([
        { unit: 'od.service', services: ['svc'], labels: { app: 'od' }, idleStopMs: 3000 },
        { unit: 'other.service', services: ['svc2'], labels: {}, idleStopMs: DEFAULT_IDLE_STOP_MS },
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

type Behaviour = 'ok' | 'fail' | 'limit' | 'dependency' | 'hang';

/** systemd's manager as seen over the bus, for units whose start does what `behaviour` says. */
class FakeSystemdBus {
  readonly calls: string[] = [];
  readonly state = new Map<string, { active: string; job: boolean; result: string }>();
  constructor(
    private readonly units: Record<string, Behaviour>,
    private readonly onActive: (unit: string) => void,
    private readonly onStop: (unit: string) => void,
  ) {}

  async call(c: DbusCall): Promise<unknown[]> {
    const unit = c.path.startsWith('/org/freedesktop/systemd1/unit/') ? decodeURIComponent(c.path.slice('/org/freedesktop/systemd1/unit/'.length)) : String(c.body?.[0]);
    const st = () => this.state.get(unit) ?? { active: 'inactive', job: false, result: 'success' };
    const v = (sig: string, value: unknown) => [[{ type: sig, child: [] }], [value]];
    switch (c.member) {
      case 'StartUnit': {
        this.calls.push(`start ${unit}`);
        const b = this.units[unit];
        if (!b) throw new DbusError('org.freedesktop.systemd1.NoSuchUnit', `Unit ${unit} not found.`, 'StartUnit');
        this.state.set(unit, { ...st(), job: true });
        setTimeout(() => {
          if (b === 'ok') {
            this.onActive(unit);
            this.state.set(unit, { active: 'active', job: false, result: 'success' });
          } else if (b === 'fail') this.state.set(unit, { active: 'failed', job: false, result: 'exit-code' });
          else if (b === 'limit') this.state.set(unit, { active: 'failed', job: false, result: 'start-limit-hit' });
          else if (b === 'dependency') this.state.set(unit, { active: 'inactive', job: false, result: 'success' });
        }, 20);
        return ['/org/freedesktop/systemd1/job/1'];
      }
      case 'StopUnit':
        this.calls.push(`stop ${unit}`);
        this.state.set(unit, { active: 'inactive', job: false, result: 'success' });
        this.onStop(unit);
        return ['/org/freedesktop/systemd1/job/2'];
      case 'LoadUnit':
        return [`/org/freedesktop/systemd1/unit/${encodeURIComponent(unit)}`];
      case 'GetAll': {
        const s = st();
        return [[
          ['LoadState', v('s', this.units[unit] ? 'loaded' : 'not-found')],
          ['ActiveState', v('s', s.active)],
          ['SubState', v('s', s.active === 'active' ? 'running' : 'dead')],
          ['Job', v('(uo)', s.job ? [7, '/org/freedesktop/systemd1/job/7'] : [0, '/'])],
          ['InactiveExitTimestampMonotonic', v('t', 1_000_000)],
          ['ActiveEnterTimestampMonotonic', v('t', 1_250_000)],
        ]];
      }
      case 'Get':
        return [v('s', st().result)];
      default:
        throw new Error(`unexpected ${c.member}`);
    }
  }
}

/** Hosted endpoints by name; a unit's endpoint serves with a chain that answers its name. */
class FakeHost implements EndpointHost {
  readonly eps = new Map<string, HostedEndpoint>();
  readonly log: string[] = [];
  count = 0;
  async addEndpoint(cfg: EndpointConfig, opts: { chain?: HostedEndpoint['chain'] } = {}): Promise<HostedEndpoint> {
    this.log.push(`add ${cfg.name}`);
    const ep = {
      cfg,
      chain: opts.chain ?? {
        request: async (_ctx: Ctx, req: NetworkServiceRequest): Promise<Connection> => ({ ...req.connection, state: 'UP', context: { ip_context: { src_ip_addrs: ['10.0.0.1/32'] } } }),
        close: async () => {},
      },
      registration: { name: cfg.name },
      connectionCount: () => this.count,
      release: () => {},
      kind: { elements: [], connectionCount: () => this.count, release: () => {} },
      setRouting: () => {},
    } as HostedEndpoint;
    this.eps.set(cfg.name, ep);
    return ep;
  }
  async removeEndpoint(name: string): Promise<void> {
    this.log.push(`remove ${name}`);
    this.eps.delete(name);
  }
  has(name: string): boolean {
    return this.eps.has(name);
  }
  list(): HostedEndpoint[] {
    return [...this.eps.values()];
  }
}

const epName = (unit: string) => `node-${unit.replace(/\.service$/, '')}`;
const def = (unit: string, idleStopMs = 3000) => ({ unit, services: ['svc'], labels: { app: 'p' }, idleStopMs });
const localReq = (endpoint: string, index = 1): NetworkServiceRequest => ({
  connection: { id: 'c1', network_service: 'svc', network_service_endpoint_name: endpoint, path: { index, path_segments: [{ name: 'client' }, { name: 'node' }, { name: 'other' }].slice(0, index + 1) } },
});

function setup(units: Record<string, Behaviour>, opts: { startTimeoutMs?: number; pollMs?: number } = {}) {
  const host = new FakeHost();
  let onSync: (unit: string) => void = () => {};
  const bus = new FakeSystemdBus(
    units,
    // nsm-connect@ sent the unit's spec: the agent hosts its endpoint, then the unit is active
    (unit) => {
      void host.addEndpoint({ name: epName(unit), services: ['svc'], labels: {}, cidr: '10.0.0.0/29', netns: 'x', payload: 'IP', excludedPrefixes: [] }).then(() => onSync(unit));
    },
    (unit) => {
      void host.removeEndpoint(epName(unit)).then(() => onSync(unit));
    },
  );
  let now = 0;
  const od = new OnDemandUnits({ systemd: new SystemdManager(bus, undefined), endpoints: host, endpointName: epName, log, now: () => now, pollMs: 5, ...opts });
  onSync = (unit) => void od.sync(unit);
  return { host, bus, od, advance: (ms: number) => (now += ms), realNow: () => now };
}

describe('OnDemandUnits', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });

  it('registers a supplier while the unit has no endpoint, and drops it once the endpoint is there', async () => {
    const { host, od } = setup({ 'p.service': 'ok' });
    cleanups.push(() => od.close());
    await od.set([def('p.service')]);
    const sup = supplierName(epName('p.service'));
    expect(host.has(sup)).toBe(true);
    expect(host.eps.get(sup)!.cfg).toMatchObject({ services: ['svc'], labels: { app: 'p' } });
    await host.addEndpoint({ name: epName('p.service'), services: ['svc'], labels: {}, cidr: '', netns: 'x', payload: 'IP', excludedPrefixes: [] });
    await od.sync('p.service');
    expect(host.has(sup)).toBe(false);
    await host.removeEndpoint(epName('p.service'));
    await od.sync('p.service');
    expect(host.has(sup)).toBe(true);
    await od.set([]);
    expect(host.has(sup)).toBe(false);
  });

  it('starts the unit on a local Request and serves it from the unit\'s endpoint', async () => {
    const { host, bus, od } = setup({ 'p.service': 'ok' });
    cleanups.push(() => od.close());
    await od.set([def('p.service')]);
    const sup = host.eps.get(supplierName(epName('p.service')))!;
    const conn = await sup.chain.request(Ctx.background(), localReq(sup.cfg.name));
    expect(bus.calls).toEqual(['start p.service']);
    expect(conn.state).toBe('UP');
    expect(conn.network_service_endpoint_name).toBe(epName('p.service'));
    // the endpoint is up: the supplier is gone, and a second Request would not start anything
    await new Promise((r) => setTimeout(r, 20));
    expect(host.has(sup.cfg.name)).toBe(false);
  });

  it('serves the Request as soon as the endpoint is hosted and the unit active, not at the next slow poll', async () => {
    const { host, od } = setup({ 'p.service': 'ok' }, { pollMs: 60_000 });
    cleanups.push(() => od.close());
    await od.set([def('p.service')]);
    const sup = host.eps.get(supplierName(epName('p.service')))!;
    const t0 = Date.now();
    const conn = await sup.chain.request(Ctx.background(), localReq(sup.cfg.name));
    expect(conn.state).toBe('UP');
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  it('shares one start between concurrent Requests', async () => {
    const { host, bus, od } = setup({ 'p.service': 'ok' });
    cleanups.push(() => od.close());
    await od.set([def('p.service')]);
    const sup = host.eps.get(supplierName(epName('p.service')))!;
    const both = await Promise.all([sup.chain.request(Ctx.background(), localReq(sup.cfg.name)), sup.chain.request(Ctx.background(), localReq(sup.cfg.name))]);
    expect(both.map((c) => c.state)).toEqual(['UP', 'UP']);
    expect(bus.calls).toEqual(['start p.service']);
  });

  it('answers another host\'s Request as upstream\'s supplier does: starts the unit and fails with ENDPOINT_STARTING', async () => {
    const { host, bus, od } = setup({ 'p.service': 'ok' });
    cleanups.push(() => od.close());
    await od.set([def('p.service')]);
    const sup = host.eps.get(supplierName(epName('p.service')))!;
    const err = await sup.chain.request(Ctx.background(), localReq(sup.cfg.name, 2)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ENDPOINT_STARTING' });
    expect((err as Error).message).toMatch(/cannot provide required networkservice: endpoint created as node-p/);
    expect(bus.calls).toEqual(['start p.service']);
    await new Promise((r) => setTimeout(r, 60));
    expect(host.has(epName('p.service'))).toBe(true);
  });

  it.each([
    ['fail', /p\.service \(service svc\): it failed to start \(Result exit-code/],
    ['limit', /p\.service \(service svc\): started too often: its start limit was hit/],
    ['dependency', /p\.service \(service svc\): its start job ended without starting it: a unit it requires failed .*nsm-connect@p\.service/],
  ] as const)('gives UNIT_START_FAILED naming the unit when its start %s', async (behaviour, message) => {
    const { host, od } = setup({ 'p.service': behaviour });
    cleanups.push(() => od.close());
    await od.set([def('p.service')]);
    const sup = host.eps.get(supplierName(epName('p.service')))!;
    const err = await sup.chain.request(Ctx.background(), localReq(sup.cfg.name)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'UNIT_START_FAILED' });
    expect((err as Error).message).toMatch(message);
    expect(host.has(sup.cfg.name)).toBe(true);
  });

  it('gives UNIT_START_FAILED for a unit systemd does not know', async () => {
    const { host, od } = setup({});
    cleanups.push(() => od.close());
    await od.set([def('gone.service')]);
    const sup = host.eps.get(supplierName(epName('gone.service')))!;
    const err = await sup.chain.request(Ctx.background(), localReq(sup.cfg.name)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'UNIT_START_FAILED' });
    expect((err as Error).message).toMatch(/on-demand unit gone\.service \(service svc\): no such unit/);
  });

  it('gives up waiting after the start timeout', async () => {
    const { host, od } = setup({ 'p.service': 'hang' }, { startTimeoutMs: 0 });
    cleanups.push(() => od.close());
    await od.set([def('p.service')]);
    const sup = host.eps.get(supplierName(epName('p.service')))!;
    const err = await sup.chain.request(Ctx.background(), localReq(sup.cfg.name)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'UNIT_START_FAILED' });
    expect((err as Error).message).toMatch(/p\.service .*its endpoint was not registered within 0 s/);
  });

  it('starts only its own unit, whatever the Request names', async () => {
    const { host, bus, od } = setup({ 'p.service': 'ok', 'other.service': 'ok' });
    cleanups.push(() => od.close());
    await od.set([def('p.service')]);
    const sup = host.eps.get(supplierName(epName('p.service')))!;
    await sup.chain.request(Ctx.background(), { connection: { ...localReq('x').connection, network_service_endpoint_name: 'node-other', labels: { unit: 'other.service' } } });
    expect(bus.calls).toEqual(['start p.service']);
  });

  it('stops a unit after IdleStopSec= without connections, not while it has some, and counts again after one', async () => {
    const { host, bus, od, advance } = setup({ 'p.service': 'ok' });
    cleanups.push(() => od.close());
    await od.set([def('p.service', 3000)]);
    const sup = host.eps.get(supplierName(epName('p.service')))!;
    await sup.chain.request(Ctx.background(), localReq(sup.cfg.name));
    host.count = 1;
    expect(await od.checkIdle()).toEqual([]);
    advance(10_000);
    expect(await od.checkIdle()).toEqual([]);
    host.count = 0;
    expect(await od.checkIdle()).toEqual([]); // idle from now
    advance(2000);
    expect(await od.checkIdle()).toEqual([]);
    host.count = 1; // a new connection: the count starts again
    expect(await od.checkIdle()).toEqual([]);
    host.count = 0;
    await od.checkIdle();
    advance(2999);
    expect(await od.checkIdle()).toEqual([]);
    advance(1);
    expect(await od.checkIdle()).toEqual(['p.service']);
    expect(bus.calls).toEqual(['start p.service', 'stop p.service']);
    await new Promise((r) => setTimeout(r, 10));
    expect(host.has(epName('p.service'))).toBe(false);
    expect(host.has(sup.cfg.name)).toBe(true);
  });

  it('never stops a unit that is not on demand', async () => {
    const { host, bus, od, advance } = setup({ 'plain.service': 'ok' });
    cleanups.push(() => od.close());
    await od.set([]);
    await host.addEndpoint({ name: epName('plain.service'), services: ['svc'], labels: {}, cidr: '', netns: 'x', payload: 'IP', excludedPrefixes: [] });
    await od.checkIdle();
    advance(DEFAULT_IDLE_STOP_MS * 2);
    expect(await od.checkIdle()).toEqual([]);
    expect(bus.calls).toEqual([]);
  });
});

describe('SystemdManager', () => {
  it('asks the root helper on nsm-ondemand.socket when systemd refuses StartUnit or StopUnit', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nsm-ondemand-sock-'));
    const sock = path.join(dir, 'ondemand.sock');
    const asked: string[] = [];
    const server = net.createServer((c) => {
      c.setEncoding('utf8');
      c.once('data', (line: string) => {
        asked.push(line);
        c.end(line.includes('gone.service') ? 'Failed to start gone.service: Unit gone.service not found.\n' : '');
      });
    });
    await new Promise<void>((r) => server.listen(sock, r));
    const busCalls: string[] = [];
    const refusing = {
      async call(c: DbusCall): Promise<unknown[]> {
        busCalls.push(c.member);
        throw new DbusError('org.freedesktop.DBus.Error.AccessDenied', `${c.member}: Permission denied`, c.member);
      },
    };
    try {
      const m = new SystemdManager(refusing, sock);
      await m.start('p.service');
      await m.stop('p.service');
      const err = await m.start('gone.service').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DbusError);
      expect((err as DbusError).name).toBe('org.freedesktop.systemd1.NoSuchUnit');
      expect(asked).toEqual(['start p.service\n', 'stop p.service\n', 'start gone.service\n']);
      // the refusal is remembered: only the first job was asked of systemd
      expect(busCalls).toEqual(['StartUnit']);
      // without a helper socket, systemd's refusal is the error
      await expect(new SystemdManager(refusing, path.join(dir, 'absent.sock')).start('p.service')).rejects.toMatchObject({ name: 'org.freedesktop.DBus.Error.AccessDenied' });
    } finally {
      await new Promise((r) => server.close(r));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads a unit\'s state from the variants the bus hands', async () => {
    const bus = new FakeSystemdBus({ 'p.service': 'ok' }, () => {}, () => {});
    const st = await new SystemdManager(bus, undefined).status('p.service');
    expect(st).toEqual({ load: 'loaded', active: 'inactive', sub: 'dead', job: false, result: 'success', inactiveExitMonoUs: 1_000_000, activeEnterMonoUs: 1_250_000 });
  });
});
