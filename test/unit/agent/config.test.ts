import { describe, it, expect } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, parseConfig, ConfigError, resolveConfigFile, DEFAULT_CONFIG_FILE } from '../../../src/agent/config';
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

  it('reports the file for unreadable files and invalid YAML', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'nsmt-cfg-'));
    try {
      const bad = path.join(dir, 'agent.yaml');
      writeFileSync(bad, 'name: [unclosed\n');
      expect(() => loadConfig(bad)).toThrow(new RegExp(`${bad}: .*invalid YAML`));
      expect(() => loadConfig(path.join(dir, 'missing.yaml'))).toThrow(/missing\.yaml: .*cannot read/);
      writeFileSync(bad, 'name: a\nname: b\n');
      expect(() => loadConfig(bad)).toThrow(/invalid YAML/);
    } finally {
      rmSync(dir, { recursive: true });
    }
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
