import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../../src/core/clock';
import { AgentError } from '../../../src/core/errors';
import { DnsLookups, DomainResolver, literalAddress } from '../../../src/registry/dnsresolve';

type Srv = { name: string; port: number; priority: number; weight: number };

function dnsError(code: string): Error {
  return Object.assign(new Error(code), { code });
}

/** A zone: SRV and A/AAAA records by name; every lookup counted. */
function zone(records: { srv?: Record<string, Srv[]>; a?: Record<string, string>; aaaa?: Record<string, string>; ttl?: number; hang?: boolean }) {
  const asked: string[] = [];
  const ttl = records.ttl ?? 30;
  const lookups: DnsLookups = {
    async resolveSrv(name) {
      asked.push(`SRV ${name}`);
      if (records.hang) return new Promise(() => {});
      const r = records.srv?.[name];
      if (!r) throw dnsError('ENOTFOUND');
      return r;
    },
    async resolve4(name) {
      asked.push(`A ${name}`);
      const ip = records.a?.[name];
      if (!ip) throw dnsError('ENODATA');
      return [{ address: ip, ttl }];
    },
    async resolve6(name) {
      asked.push(`AAAA ${name}`);
      const ip = records.aaaa?.[name];
      if (!ip) throw dnsError('ENODATA');
      return [{ address: ip, ttl }];
    },
  };
  return { lookups, asked };
}

const srv = (name: string, port: number): Srv[] => [{ name, port, priority: 0, weight: 0 }];

describe('DomainResolver (upstream dnsresolve)', () => {
  it('finds a domain\'s nsmgr-proxy as upstream does; none is remembered for a while, a literal domain has none', async () => {
    const clock = new FakeClock();
    const z = zone({ srv: { 'nsmgr-proxy.nsm-system.b.test': srv('ignored', 5004) }, a: { 'nsmgr-proxy.nsm-system.b.test': '10.0.0.4' } });
    const r = new DomainResolver({ clock, timeoutMs: 1000, lookups: z.lookups });
    expect(await r.resolveProxy('b.test')).toEqual({ address: '10.0.0.4:5004', via: 'nsmgr-proxy.nsm-system.b.test' });
    expect(await r.resolveProxy('c.test')).toBeUndefined();
    const asked = z.asked.length;
    expect(await r.resolveProxy('c.test')).toBeUndefined();
    expect(z.asked.length).toBe(asked);
    clock.advance(31_000);
    expect(await r.resolveProxy('c.test')).toBeUndefined();
    expect(z.asked.length).toBeGreaterThan(asked);
    expect(await r.resolveProxy('10.0.0.2:5002')).toBeUndefined();
  });

  it('takes the port from SRV registry.nsm-system.<domain> and the address from A on the same name, ignoring the target', async () => {
    const z = zone({ srv: { 'registry.nsm-system.b.test': srv('ignored.example', 5002) }, a: { 'registry.nsm-system.b.test': '10.0.0.2' } });
    const r = new DomainResolver({ clock: new FakeClock(), timeoutMs: 1000, lookups: z.lookups });
    expect(await r.resolve('b.test')).toEqual({ address: '10.0.0.2:5002', via: 'registry.nsm-system.b.test' });
    expect(z.asked).not.toContain('A ignored.example');
  });

  it('falls back to SRV _nsm-registry._tcp.<domain> with its target resolved, IPv6 in brackets', async () => {
    const z = zone({ srv: { '_nsm-registry._tcp.b.test': srv('reg.b.test', 7000) }, aaaa: { 'reg.b.test': 'fd00::7' } });
    const r = new DomainResolver({ clock: new FakeClock(), timeoutMs: 1000, lookups: z.lookups });
    expect(await r.resolve('b.test')).toEqual({ address: '[fd00::7]:7000', via: '_nsm-registry._tcp.b.test' });
  });

  it('prefers the upstream form when both answer', async () => {
    const z = zone({
      srv: { 'registry.nsm-system.b.test': srv('x', 5002), '_nsm-registry._tcp.b.test': srv('reg.b.test', 7000) },
      a: { 'registry.nsm-system.b.test': '10.0.0.2', 'reg.b.test': '10.0.0.3' },
    });
    const r = new DomainResolver({ clock: new FakeClock(), timeoutMs: 1000, lookups: z.lookups });
    expect((await r.resolve('b.test')).address).toBe('10.0.0.2:5002');
  });

  it('uses IP:port domains as they are, without DNS', async () => {
    const z = zone({});
    const r = new DomainResolver({ clock: new FakeClock(), timeoutMs: 1000, lookups: z.lookups });
    expect(await r.resolve('10.1.2.3:5002')).toEqual({ address: '10.1.2.3:5002', via: 'literal' });
    expect(literalAddress('[fd00::1]:5002')).toBe('[fd00::1]:5002');
    expect(literalAddress('b.test:5002')).toBeUndefined();
    expect(literalAddress('10.1.2.3:70000')).toBeUndefined();
    expect(z.asked).toEqual([]);
  });

  it('caches an answer for its TTL, then asks again', async () => {
    const clock = new FakeClock();
    const z = zone({ srv: { 'registry.nsm-system.b.test': srv('x', 5002) }, a: { 'registry.nsm-system.b.test': '10.0.0.2' }, ttl: 10 });
    const r = new DomainResolver({ clock, timeoutMs: 1000, lookups: z.lookups });
    await r.resolve('b.test');
    const n = z.asked.length;
    clock.advance(9_000);
    await r.resolve('B.test');
    expect(z.asked.length).toBe(n);
    clock.advance(2_000);
    await r.resolve('b.test');
    expect(z.asked.length).toBeGreaterThan(n);
  });

  it('NXDOMAIN: DOMAIN_NOT_FOUND naming both DNS names asked', async () => {
    const r = new DomainResolver({ clock: new FakeClock(), timeoutMs: 1000, lookups: zone({}).lookups, servers: ['10.9.9.9'] });
    const err = (await r.resolve('nx.test').catch((e) => e)) as AgentError;
    expect(err.code).toBe('DOMAIN_NOT_FOUND');
    expect(err.message).toContain('SRV registry.nsm-system.nx.test: NXDOMAIN');
    expect(err.message).toContain('SRV _nsm-registry._tcp.nx.test: NXDOMAIN');
    expect(err.message).toContain('10.9.9.9');
  });

  it('SRV without an address: DOMAIN_NOT_FOUND saying which A/AAAA is missing', async () => {
    const z = zone({ srv: { 'registry.nsm-system.b.test': srv('x', 5002) } });
    const r = new DomainResolver({ clock: new FakeClock(), timeoutMs: 1000, lookups: z.lookups });
    const err = (await r.resolve('b.test').catch((e) => e)) as AgentError;
    expect(err.code).toBe('DOMAIN_NOT_FOUND');
    expect(err.message).toContain('SRV gives port 5002 but A/AAAA registry.nsm-system.b.test: no record');
  });

  it('a DNS server that never answers: DOMAIN_NOT_FOUND within the timeout, not a hang', async () => {
    const r = new DomainResolver({ clock: new FakeClock(), timeoutMs: 50, lookups: zone({ hang: true }).lookups });
    const t0 = Date.now();
    const err = (await r.resolve('slow.test').catch((e) => e)) as AgentError;
    expect(err.code).toBe('DOMAIN_NOT_FOUND');
    expect(err.message).toContain('no answer within 50 ms');
    expect(Date.now() - t0).toBeLessThan(1000);
  });
});
