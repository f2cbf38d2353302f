import { describe, it, expect } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, parseConfig, checkOnHost, ConfigError, resolveConfigFile, DEFAULT_CONFIG_FILE } from '../../../src/agent/config';
import { parseDuration } from '../../../src/agent/config/duration';
import { DEFAULT_OTLP_ENDPOINT, tracingSettings } from '../../../src/agent/tracing';

function expectConfigError(fn: () => unknown, key: string, reason: RegExp) {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).key).toBe(key);
    expect((err as ConfigError).reason).toMatch(reason);
    return;
  }
  throw new Error('expected a ConfigError');
}

describe('agent.yaml', () => {
  it('fills defaults for an empty document', () => {
    const c = parseConfig({});
    expect(c.listen.unix).toBe('/run/nsm-agent/agent.sock');
    expect(c.maxTokenLifetimeMs).toBe(600_000);
    expect(c.registry).toMatchObject({ url: 'embedded', store: 'memory', expirationMs: 60_000 });
    expect(c.endpoints).toEqual([]);
    expect(c.name).toMatch(/^[a-z0-9]/);
  });

  it('reads endpoints with defaults', () => {
    const c = parseConfig({
      name: 'host-a',
      maxTokenLifetime: '3s',
      endpoints: [{ name: 'icmp-responder', services: ['icmp-responder'], cidr: '172.16.1.100/31', netns: 'nse' }],
    });
    expect(c.maxTokenLifetimeMs).toBe(3000);
    expect(c.endpoints[0]).toMatchObject({ netns: 'nse', payload: 'IP', labels: {}, excludedPrefixes: [] });
  });

  it('reads metrics: off unless set, mtls implies tls', () => {
    expect(parseConfig({}).metrics).toBeUndefined();
    expect(parseConfig({ metrics: { listen: '127.0.0.1:9090' } }).metrics).toEqual({ listen: '127.0.0.1:9090', tls: false, mtls: false });
    expect(parseConfig({ metrics: { listen: '[::1]:9090', mtls: true } }).metrics).toEqual({ listen: '[::1]:9090', tls: true, mtls: true });
    expectConfigError(() => parseConfig({ metrics: { tls: true } }), 'metrics.listen', /required/);
    expectConfigError(() => parseConfig({ metrics: { listen: '9090' } }), 'metrics.listen', /format/);
    expectConfigError(() => parseConfig({ metrics: { listen: ':9090', tls: false, mtls: true } }), 'metrics.mtls', /needs metrics.tls/);
  });

  it('reads telemetry, and TELEMETRY / NSM_OPEN_TELEMETRY_ENDPOINT switch tracing as in NSM', () => {
    expect(parseConfig({ telemetry: { endpoint: 'collector:4317' } }).telemetry).toEqual({ endpoint: 'collector:4317' });
    expectConfigError(() => parseConfig({ telemetry: {} }), 'telemetry.endpoint', /required/);
    expect(tracingSettings(undefined, {})).toBeUndefined();
    expect(tracingSettings(undefined, { TELEMETRY: 'true' })).toEqual({ endpoint: DEFAULT_OTLP_ENDPOINT });
    expect(tracingSettings(undefined, { TELEMETRY: 'true', NSM_OPEN_TELEMETRY_ENDPOINT: 'c:4317' })).toEqual({ endpoint: 'c:4317' });
    expect(tracingSettings({ endpoint: 'y:1' }, {})).toEqual({ endpoint: 'y:1' });
    expect(tracingSettings({ endpoint: 'y:1' }, { NSM_OPEN_TELEMETRY_ENDPOINT: 'c:4317' })).toEqual({ endpoint: 'c:4317' });
    expect(tracingSettings({ endpoint: 'y:1' }, { TELEMETRY: 'false' })).toBeUndefined();
  });

  it('names the key of an unknown setting', () => {
    expectConfigError(() => parseConfig({ endpoints: [{ name: 'a', services: ['s'], cidr: '10.0.0.0/24', colour: 'x' }] }), 'endpoints[0].colour', /unknown key/);
  });

  it('names a missing required key', () => {
    expectConfigError(() => parseConfig({ endpoints: [{ name: 'a', cidr: '10.0.0.0/24' }] }), 'endpoints[0].services', /required/);
  });

  it('rejects a bad CIDR, duration, enum and duplicate names', () => {
    expectConfigError(() => parseConfig({ endpoints: [{ name: 'a', services: ['s'], cidr: '10.0.0.300/24' }] }), 'endpoints[0].cidr', /not a CIDR/);
    expectConfigError(() => parseConfig({ maxTokenLifetime: '10 minutes' }), 'maxTokenLifetime', /format/);
    expectConfigError(() => parseConfig({ registry: { store: 'redis' } }), 'registry.store', /one of memory, etcd/);
    expectConfigError(() => parseConfig({ registry: { store: 'etcd' } }), 'registry.etcd', /at least one endpoint/);
    expectConfigError(
      () =>
        parseConfig({
          endpoints: [
            { name: 'a', services: ['s'], cidr: '10.0.0.0/24' },
            { name: 'a', services: ['t'], cidr: '10.0.1.0/24' },
          ],
        }),
      'endpoints[1].name',
      /duplicate/,
    );
    expectConfigError(() => parseConfig({ endpoints: [{ name: 'a', services: ['s'], cidr: '10.0.0.0/24', interface: 'much-too-long-name' }] }), 'endpoints[0].interface', /15/);
  });

  it('words schema errors as sentences naming the value and the limit, never ajv`s', () => {
    const ep = (extra: object) => parseConfig({ endpoints: [{ name: 'a', services: ['s'], cidr: '10.0.0.0/24', ...extra }] });
    expectConfigError(() => ep({ interface: 'much-too-long-name' }), 'endpoints[0].interface', /^"much-too-long-name" is longer than 15 characters, the most allowed$/);
    expectConfigError(() => ep({ services: [] }), 'endpoints[0].services', /^must list at least 1 item$/);
    expectConfigError(() => ep({ labels: { a: 1 } }), 'endpoints[0].labels.a', /^must be a string$/);
    expectConfigError(() => parseConfig({ heal: { maxChecksPerSecond: 0 } }), 'heal.maxChecksPerSecond', /^must be at least 1$/);
    expectConfigError(() => parseConfig({ endpoints: {} }), 'endpoints', /^must be a list$/);
    for (const fn of [() => ep({ interface: 'much-too-long-name' }), () => ep({ services: [] }), () => parseConfig({ heal: { maxChecksPerSecond: 0 } })]) {
      expect(() => fn()).not.toThrow(/must NOT|must have|must be >=/);
    }
  });

  it('refuses an endpoint pool that can never hold a pair, and malformed namespace names', () => {
    const ep = (extra: object) => parseConfig({ endpoints: [{ name: 'a', services: ['s'], cidr: '10.0.0.0/24', ...extra }] });
    expectConfigError(() => ep({ cidr: '10.0.0.1/32' }), 'endpoints[0].cidr', /10\.0\.0\.1\/32 can never hold a connection/);
    expectConfigError(() => ep({ cidr: 'fd00::1/128' }), 'endpoints[0].cidr', /can never hold a connection/);
    expectConfigError(() => ep({ cidr: '10.0.0.0/30', excludedPrefixes: ['10.0.0.0/31', '10.0.0.3/32'] }), 'endpoints[0].cidr', /can never hold/);
    expect(ep({ cidr: '10.0.0.0/31' }).endpoints[0]!.cidr).toBe('10.0.0.0/31');
    expectConfigError(() => ep({ netns: 'a/b' }), 'endpoints[0].netns', /must be host, a name under \/run\/netns or an absolute path/);
    expectConfigError(() => ep({ netns: '..' }), 'endpoints[0].netns', /not a namespace name/);
  });

  it('checks configured connections as connect would: URL, namespace name and id', () => {
    const conn = (c: object) => parseConfig({ connections: [{ url: 'kernel://s/nsm-1', ...c }] });
    expect(conn({}).connections[0]).toEqual({ url: 'kernel://s/nsm-1', netns: 'host', id: undefined });
    expectConfigError(() => conn({ url: 'kernel://s/much-too-long-name' }), 'connections[0].url', /longer than 15/);
    expectConfigError(() => conn({ url: 'kernel://s/nsm-1?a=%zz' }), 'connections[0].url', /malformed/);
    expectConfigError(() => conn({ url: 'vfio://s/nsm-1' }), 'connections[0].url', /not supported/);
    expectConfigError(() => conn({ netns: 'a/b' }), 'connections[0].netns', /must be host/);
    expectConfigError(() => conn({ id: 'a b' }), 'connections[0].id', /printable ASCII/);
  });

  it('refuses an endpoint whose network namespace does not exist on this host', () => {
    const cfg = parseConfig({ endpoints: [{ name: 'a', services: ['s'], cidr: '10.0.0.0/24', netns: 'gone' }] }, 'agent.yaml');
    expectConfigError(() => checkOnHost(cfg, () => false), 'endpoints[0].netns', /^network namespace \/run\/netns\/gone of endpoint a does not exist/);
    expect(checkOnHost(cfg, (f) => f === '/run/netns/gone')).toBe(cfg);
    expect(checkOnHost(parseConfig({ endpoints: [{ name: 'a', services: ['s'], cidr: '10.0.0.0/24' }] }), () => false).endpoints).toHaveLength(1);
  });

  it('reports the file for unreadable files and invalid YAML', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'nsmt-cfg-'));
    try {
      const bad = path.join(dir, 'agent.yaml');
      writeFileSync(bad, 'name: [unclosed\n');
      expect(() => loadConfig(bad)).toThrow(new RegExp(`${bad}: .*invalid YAML`));
      expect(() => loadConfig(path.join(dir, 'missing.yaml'))).toThrow(/missing\.yaml: .*cannot read/);
      writeFileSync(bad, 'name: a\nname: b\n');
      expect(() => loadConfig(bad)).toThrow(new RegExp(`^${bad}: line 2, column 1: invalid YAML: a key appears twice in the same map$`));
      writeFileSync(bad, 'name: *n\nstateDir: &n /x\n');
      expect(() => loadConfig(bad)).toThrow(new RegExp(`^${bad}: invalid YAML: an alias to an anchor that is not defined before it`));
      writeFileSync(bad, 'name: a\nlisten\n');
      expect(() => loadConfig(bad)).toThrow(new RegExp(`^${bad}: line 2, column 1: invalid YAML: implicit map keys need to be followed by map values$`));
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});

describe('vl3ipam', () => {
  const ipam = (v: Record<string, unknown>) => parseConfig({ vl3ipam: { listen: '10.0.0.1:5006', prefix: '172.16.0.0/16', ...v } });

  it('is absent unless given; clientPrefixLength defaults to 24, as upstream', () => {
    expect(parseConfig({}).vl3ipam).toBeUndefined();
    expect(ipam({}).vl3ipam).toEqual({ listen: '10.0.0.1:5006', prefix: '172.16.0.0/16', clientPrefixLength: 24 });
    expect(ipam({ listen: 'unix:///run/nsm-agent/vl3-ipam.sock', prefix: '2001:db8::/64', clientPrefixLength: 112 }).vl3ipam).toMatchObject({
      listen: 'unix:///run/nsm-agent/vl3-ipam.sock',
      clientPrefixLength: 112,
    });
    expect(ipam({ listen: '[::1]:5006' }).vl3ipam?.listen).toBe('[::1]:5006');
  });

  it('names the key of a bad listen address, prefix or client length', () => {
    expectConfigError(() => parseConfig({ vl3ipam: { listen: '10.0.0.1:5006' } }), 'vl3ipam.prefix', /required/);
    expectConfigError(() => ipam({ listen: '10.0.0.1' }), 'vl3ipam.listen', /not host:port, \[v6\]:port or unix:\/\/\/path/);
    expectConfigError(() => ipam({ listen: '10.0.0.1:70000' }), 'vl3ipam.listen', /not host:port/);
    expectConfigError(() => ipam({ listen: 'tcp://10.0.0.1:5006' }), 'vl3ipam.listen', /not host:port/);
    expectConfigError(() => ipam({ listen: 'unix://relative.sock' }), 'vl3ipam.listen', /not unix:\/\/\/absolute\/path/);
    expectConfigError(() => ipam({ prefix: '172.16.0.300/16' }), 'vl3ipam.prefix', /not a CIDR prefix/);
    expectConfigError(() => ipam({ prefix: '172.16.0.0' }), 'vl3ipam.prefix', /not a CIDR prefix/);
    expectConfigError(() => ipam({ clientPrefixLength: 16 }), 'vl3ipam.clientPrefixLength', /16 does not fit 172\.16\.0\.0\/16: it must be longer than \/16 and at most \/32/);
    expectConfigError(() => ipam({ clientPrefixLength: 33 }), 'vl3ipam.clientPrefixLength', /at most \/32/);
    expectConfigError(() => ipam({ prefix: '2001:db8::/64', clientPrefixLength: 129 }), 'vl3ipam.clientPrefixLength', /at most 128/);
    expectConfigError(() => ipam({ prefix: '2001:db8::/64' }), 'vl3ipam.clientPrefixLength', /24 does not fit 2001:db8::\/64/);
    expectConfigError(() => ipam({ clientPrefixLength: 24.5 }), 'vl3ipam.clientPrefixLength', /integer/);
    expectConfigError(() => ipam({ colour: 'x' }), 'vl3ipam.colour', /unknown key/);
  });
});

describe('durations', () => {
  it('parses Go-style durations', () => {
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('1m30s')).toBe(90_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('1.5h')).toBe(5_400_000);
    expect(parseDuration('10')).toBeUndefined();
    expect(parseDuration('0s')).toBeUndefined();
    expect(parseDuration('5s junk')).toBeUndefined();
  });
});

describe('the configuration file `run` reads', () => {
  const seen: string[] = [];
  const exists = (present: boolean) => (file: string) => {
    seen.push(file);
    return present;
  };

  it('is /etc/nsm-agent/agent.yaml when neither --config nor $NSM_AGENT_CONFIG is given and it exists', () => {
    expect(resolveConfigFile(undefined, {}, exists(true))).toBe('/etc/nsm-agent/agent.yaml');
    expect(DEFAULT_CONFIG_FILE).toBe('/etc/nsm-agent/agent.yaml');
  });

  it('is none (built-in defaults) when /etc/nsm-agent/agent.yaml does not exist', () => {
    expect(resolveConfigFile(undefined, {}, exists(false))).toBeUndefined();
  });

  it('is --config first, then $NSM_AGENT_CONFIG, whether or not the default exists', () => {
    seen.length = 0;
    expect(resolveConfigFile('/x/a.yaml', { NSM_AGENT_CONFIG: '/y/b.yaml' }, exists(true))).toBe('/x/a.yaml');
    expect(resolveConfigFile(undefined, { NSM_AGENT_CONFIG: '/y/b.yaml' }, exists(true))).toBe('/y/b.yaml');
    expect(seen).toEqual([]);
  });
});

describe('domain and interdomain', () => {
  it('defaults: no domain, the system resolver, 3 s', () => {
    const c = parseConfig({});
    expect(c.domain).toBeUndefined();
    expect(c.interdomain).toEqual({ dnsServers: [], timeoutMs: 3000 });
  });

  it('reads domain, DNS servers and the timeout', () => {
    const c = parseConfig({ domain: 'site-b.example', interdomain: { dnsServers: ['10.0.0.53', '10.0.0.54:5353', '[fd00::53]:53'], timeout: '500ms' } });
    expect(c.domain).toBe('site-b.example');
    expect(c.interdomain).toEqual({ dnsServers: ['10.0.0.53', '10.0.0.54:5353', '[fd00::53]:53'], timeoutMs: 500 });
  });

  it('reads interdomain.relay, which needs domain and listen.tcp', () => {
    const c = parseConfig({ domain: 'site-b.example', listen: { tcp: '10.0.0.1:5001' }, interdomain: { relay: true } });
    expect(c.interdomain).toEqual({ dnsServers: [], timeoutMs: 3000, relay: true });
    expect(() => parseConfig({ listen: { tcp: '10.0.0.1:5001' }, interdomain: { relay: true } })).toThrow(/interdomain\.relay: needs domain/);
    expect(() => parseConfig({ domain: 'site-b.example', interdomain: { relay: true } })).toThrow(/interdomain\.relay: needs listen\.tcp/);
  });

  it('refuses a DNS server that is not an address, naming the key', () => {
    expect(() => parseConfig({ interdomain: { dnsServers: ['10.0.0.53', 'dns.example'] } })).toThrow(/interdomain\.dnsServers\[1\]: dns\.example is not IP/);
    expect(() => parseConfig({ domain: 'bad domain' })).toThrow(ConfigError);
    expect(() => parseConfig({ interdomain: { timeout: 'soon' } })).toThrow(/interdomain\.timeout/);
  });

  it('an endpoint serves services of its own domain only', () => {
    const ep = (services: string[], domain?: string) => parseConfig({ ...(domain ? { domain } : {}), endpoints: [{ name: 'e', services, cidr: '172.16.1.0/31' }] });
    expect(ep(['icmp@site-b.example'], 'site-b.example').endpoints[0]!.services).toEqual(['icmp@site-b.example']);
    expect(() => ep(['icmp', 'icmp@site-a.example'], 'site-b.example')).toThrow(/endpoints\[0\]\.services\[1\]: icmp@site-a\.example names domain site-a\.example/);
    expect(() => ep(['icmp@site-a.example'])).toThrow(/not this agent's \(domain: none\)/);
  });

  it('publicIP: an IP address, else an error naming the key', () => {
    expect(parseConfig({ publicIP: '203.0.113.5' }).publicIP).toBe('203.0.113.5');
    expect(parseConfig({}).publicIP).toBeUndefined();
    expect(() => parseConfig({ publicIP: 'nat.example' })).toThrow(/publicIP: nat\.example is not an IP address/);
  });

  it('an endpoint named name@<other domain> is floating: every service carries that domain', () => {
    const ep = (name: string, services: string[]) => parseConfig({ domain: 'site-b.example', endpoints: [{ name, services, cidr: '172.16.1.0/31' }] });
    const c = ep('nse-b@floating.example', ['svc@floating.example']);
    expect(c.endpoints[0]).toMatchObject({ name: 'nse-b@floating.example', services: ['svc@floating.example'] });
    expect(() => ep('nse-b@floating.example', ['svc@floating.example', 'icmp'])).toThrow(
      /endpoints\[0\]\.services\[1\]: icmp is not of domain floating\.example: a floating endpoint/,
    );
    expect(() => ep('nse-b', ['svc@floating.example'])).toThrow(/name the endpoint nse-b@floating\.example too/);
    expect(() => ep('nse b@floating.example', ['svc@floating.example'])).toThrow(ConfigError);
  });
});

describe('endpoints[].dns', () => {
  const ep = (dns: unknown) => parseConfig({ endpoints: [{ name: 'e', services: ['s'], cidr: '172.16.1.0/24', dns }] });

  it('is absent unless given; searchDomains default to none', () => {
    expect(ep(undefined).endpoints[0]!.dns).toBeUndefined();
    expect(ep([{ servers: ['172.16.1.100', '2001:db8::53'], searchDomains: ['my.coredns.service'] }, { servers: ['10.0.0.53'] }]).endpoints[0]!.dns).toEqual([
      { servers: ['172.16.1.100', '2001:db8::53'], searchDomains: ['my.coredns.service'] },
      { servers: ['10.0.0.53'], searchDomains: [] },
    ]);
    const vl3 = parseConfig({ endpoints: [{ name: 'v', services: ['s'], vl3: { ipam: ['tcp://10.0.0.1:5006'] }, dns: [{ servers: ['10.0.0.53'] }] }] });
    expect(vl3.endpoints[0]!.dns).toEqual([{ servers: ['10.0.0.53'], searchDomains: [] }]);
  });

  it('names the key of a bad server or search domain', () => {
    expectConfigError(() => ep([{ servers: ['172.16.1.100', 'dns.example'] }]), 'endpoints[0].dns[0].servers[1]', /"dns\.example" is not an IPv4 or IPv6 address/);
    expectConfigError(() => ep([{ servers: ['10.0.0.1:53'] }]), 'endpoints[0].dns[0].servers[0]', /not an IPv4 or IPv6 address/);
    expectConfigError(() => ep([{ servers: ['10.0.0.1'] }, { servers: ['10.0.0.2'], searchDomains: ['bad domain'] }]), 'endpoints[0].dns[1].searchDomains[0]', /"bad domain" is not a domain name/);
    expectConfigError(() => ep([{ servers: ['10.0.0.1'], searchDomains: ['a..b'] }]), 'endpoints[0].dns[0].searchDomains[0]', /not a domain name/);
    expectConfigError(() => ep([{ servers: [] }]), 'endpoints[0].dns[0].servers', /at least 1 item/);
    expectConfigError(() => ep([{ searchDomains: ['x'] }]), 'endpoints[0].dns[0].servers', /is required/);
    expectConfigError(() => ep([{ servers: ['10.0.0.1'], search: ['x'] }]), 'endpoints[0].dns[0].search', /unknown key/);
    expectConfigError(() => ep({ servers: ['10.0.0.1'] }), 'endpoints[0].dns', /must be a list/);
  });
});

describe('endpoints[].routes and policies', () => {
  const ep = (extra: Record<string, unknown>) => ({ endpoints: [{ name: 'e', services: ['s'], cidr: '172.16.2.200/30', ...extra }] });

  it('are taken in their wire form (PolicyRoute, Route); numbers become text', () => {
    const cfg = parseConfig(
      ep({
        routes: [{ prefix: '172.16.5.0/24' }, { prefix: '172.16.6.0/24', nextHop: '172.16.2.200' }],
        policies: [{ from: '172.16.2.201/24', proto: 6, dstPort: 6666, routes: [{ prefix: '172.16.3.0/24', nextHop: '172.16.2.200' }] }, { proto: 17, srcPort: '5555-5560' }],
      }),
    );
    expect(cfg.endpoints[0]!.routes).toEqual([{ prefix: '172.16.5.0/24' }, { prefix: '172.16.6.0/24', nextHop: '172.16.2.200' }]);
    expect(cfg.endpoints[0]!.policies).toEqual([
      { from: '172.16.2.201/24', proto: '6', dst_port: '6666', routes: [{ prefix: '172.16.3.0/24', nextHop: '172.16.2.200' }] },
      { proto: '17', src_port: '5555-5560', routes: [] },
    ]);
    expect(parseConfig(ep({})).endpoints[0]).not.toHaveProperty('policies');
  });

  it('errors name the key', () => {
    const err = (extra: Record<string, unknown>) => {
      try {
        parseConfig(ep(extra), 'agent.yaml');
      } catch (e) {
        return (e as Error).message;
      }
      return 'no error';
    };
    expect(err({ routes: [{ prefix: 'x' }] })).toBe('agent.yaml: endpoints[0].routes[0].prefix: x is not a CIDR prefix');
    expect(err({ routes: [{ prefix: '10.0.0.0/8', nextHop: 'y' }] })).toBe('agent.yaml: endpoints[0].routes[0].nextHop: y is not an IP address');
    expect(err({ policies: [{ proto: 300 }] })).toMatch(/^agent\.yaml: endpoints\[0\]\.policies\[0\]: proto "300" is not an IP protocol number/);
    expect(err({ policies: [{ dstPort: '9-1' }] })).toMatch(/^agent\.yaml: endpoints\[0\]\.policies\[0\]: dst_port "9-1"/);
    expect(err({ policies: [{ dstPort: 80 }, { dstPort: '80' }] })).toBe('agent.yaml: endpoints[0].policies[1]: matches the same traffic (from, proto, srcPort, dstPort) as an earlier policy');
    expect(err({ policies: [{ port: 80 }] })).toBe('agent.yaml: endpoints[0].policies[0].port: unknown key');
    expect(err({ policies: [{}], vl3: { ipam: ['tcp://1.2.3.4:5006'] }, cidr: undefined })).toBe('agent.yaml: endpoints[0].policies: a vL3 endpoint hands out its own routes: remove it');
  });
});

describe('agent.yaml passthrough endpoints', () => {
  const ep = (extra: object) => ({ endpoints: [{ name: 'fw', services: ['secure-intranet'], labels: { app: 'firewall' }, netns: 'fw', passthrough: true, ...extra }] });

  it('makes a passthrough endpoint without a pool', () => {
    expect(parseConfig(ep({})).endpoints[0]).toEqual({
      name: 'fw',
      services: ['secure-intranet'],
      labels: { app: 'firewall' },
      cidr: '',
      netns: 'fw',
      payload: 'IP',
      excludedPrefixes: [],
      kind: 'passthrough',
    });
    expect(parseConfig(ep({ passthrough: false, cidr: '10.0.0.0/30' })).endpoints[0]!.kind).toBeUndefined();
  });

  it('refuses what a passthrough endpoint does not use', () => {
    expectConfigError(() => parseConfig(ep({ cidr: '10.0.0.0/30' })), 'endpoints[0].cidr', /assigns no addresses/);
    expectConfigError(() => parseConfig(ep({ excludedPrefixes: ['10.0.0.0/31'] })), 'endpoints[0].excludedPrefixes', /assigns no addresses/);
    expectConfigError(() => parseConfig(ep({ interface: 'x' })), 'endpoints[0].interface', /two interfaces per connection/);
    expectConfigError(() => parseConfig(ep({ dns: [{ servers: ['10.0.0.53'] }] })), 'endpoints[0].dns', /remove dns/);
    expectConfigError(() => parseConfig(ep({ vl3: { ipam: ['tcp://10.0.0.1:5006'] } })), 'endpoints[0].passthrough', /cannot be a passthrough/);
    expectConfigError(() => parseConfig(ep({ passthrough: 'yes' })), 'endpoints[0].passthrough', /boolean/);
  });
});
