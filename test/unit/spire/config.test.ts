/** agent.yaml: the `identity` and `policy` keys. */
import { describe, it, expect } from 'vitest';
import { ConfigError, parseConfig } from '../../../src/agent/config';

function error(doc: unknown): ConfigError {
  try {
    parseConfig(doc, 'agent.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('config: identity and policy', () => {
  it('defaults to the development identity under stateDir', () => {
    const cfg = parseConfig({ stateDir: '/srv/nsm' });
    expect(cfg.identity).toEqual({ source: 'dev', socket: undefined, files: undefined, dev: { caDir: '/srv/nsm/dev-ca', trustDomain: 'nsm.local', allowNonLoopback: false } });
    expect(cfg.policy).toEqual([]);
  });

  it('reads the spiffe, files and dev settings', () => {
    expect(parseConfig({ identity: { source: 'spiffe', socket: 'unix:///run/spire/agent.sock' } }).identity.socket).toBe('unix:///run/spire/agent.sock');
    const files = parseConfig({
      identity: { source: 'files', files: { cert: '/etc/nsm/svid.pem', key: '/etc/nsm/svid.key', bundle: '/etc/nsm/bundle.pem', federated: { 'spiffe://other.org': '/etc/nsm/other.pem' } } },
    }).identity.files;
    expect(files).toEqual({ cert: '/etc/nsm/svid.pem', key: '/etc/nsm/svid.key', bundle: '/etc/nsm/bundle.pem', federated: { 'spiffe://other.org': '/etc/nsm/other.pem' } });
    const dev = parseConfig({ identity: { dev: { caDir: '/tmp/ca', trustDomain: 'example.org', allowNonLoopback: true } } }).identity.dev;
    expect(dev).toEqual({ caDir: '/tmp/ca', trustDomain: 'example.org', allowNonLoopback: true });
  });

  it('reads identity.federation and identity.bundleEndpoint', () => {
    const id = parseConfig({
      identity: {
        federation: [
          { trustDomain: 'spiffe://domain-b.org', bundleEndpoint: 'https://10.0.0.2:8443/bundle', endpointId: 'spiffe://domain-b.org/host-b', bundle: '/etc/nsm/b.pem', minRefresh: '2s', maxRefresh: '10m' },
          { trustDomain: 'domain-c.org', bundleEndpoint: 'https://[fd00::3]:8443', endpointId: 'spiffe://domain-c.org/spire/server' },
        ],
        bundleEndpoint: { listen: '0.0.0.0:8443', refreshHint: '1m' },
      },
    }).identity;
    expect(id.federation).toEqual([
      { trustDomain: 'domain-b.org', bundleEndpoint: 'https://10.0.0.2:8443/bundle', endpointId: 'spiffe://domain-b.org/host-b', bundle: '/etc/nsm/b.pem', minRefreshMs: 2000, maxRefreshMs: 600_000 },
      { trustDomain: 'domain-c.org', bundleEndpoint: 'https://[fd00::3]:8443', endpointId: 'spiffe://domain-c.org/spire/server' },
    ]);
    expect(id.bundleEndpoint).toEqual({ listen: '0.0.0.0:8443', refreshHintS: 60 });
    expect(parseConfig({ identity: { bundleEndpoint: { listen: ':8443' } } }).identity.bundleEndpoint).toEqual({ listen: ':8443', refreshHintS: 300 });
  });

  it('names the key and the reason for bad federation settings', () => {
    const f = (over: Record<string, unknown>) => ({ identity: { federation: [{ trustDomain: 'b.org', bundleEndpoint: 'https://h:1/', endpointId: 'spiffe://b.org/x', ...over }] } });
    expect(error(f({ bundleEndpoint: 'http://h:1/' }))).toMatchObject({ key: 'identity.federation[0].bundleEndpoint' });
    expect(error(f({ endpointId: 'spiffe://b.org' }))).toMatchObject({ key: 'identity.federation[0].endpointId' });
    expect(error(f({ trustDomain: 'B.ORG' }))).toMatchObject({ key: 'identity.federation[0].trustDomain' });
    expect(error(f({ minRefresh: '10m', maxRefresh: '1m' }))).toMatchObject({ key: 'identity.federation[0].maxRefresh', reason: /below minRefresh/ });
    expect(error(f({ profile: 'https_web' }))).toMatchObject({ key: 'identity.federation[0].profile' });
    expect(
      error({
        identity: {
          source: 'files',
          files: { cert: 'a', key: 'b', bundle: 'c', federated: { 'b.org': 'f' } },
          federation: [{ trustDomain: 'b.org', bundleEndpoint: 'https://h:1/', endpointId: 'spiffe://b.org/x' }],
        },
      }),
    ).toMatchObject({ key: 'identity.federation[0].trustDomain', reason: /also has a bundle file/ });
    expect(error({ identity: { bundleEndpoint: { listen: '8443' } } })).toMatchObject({ key: 'identity.bundleEndpoint.listen' });
  });

  it('names the key and the reason for bad identity settings', () => {
    expect(error({ identity: { source: 'files' } })).toMatchObject({ key: 'identity.files', reason: /required with identity.source files/ });
    expect(error({ identity: { source: 'files', files: { cert: 'a', key: 'b' } } })).toMatchObject({ key: 'identity.files.bundle' });
    expect(error({ identity: { socket: 'unix://host/x.sock' } })).toMatchObject({ key: 'identity.socket', reason: /authority/ });
    expect(error({ identity: { socket: '/run/spire.sock' } })).toMatchObject({ key: 'identity.socket' });
    expect(error({ identity: { source: 'files', files: { cert: 'a', key: 'b', bundle: 'c', federated: { 'spiffe://td/x': 'f' } } } })).toMatchObject({
      key: 'identity.files.federated.spiffe://td/x',
    });
    expect(error({ identity: { dev: { trustDomain: 'Bad.TD' } } })).toMatchObject({ key: 'identity.dev.trustDomain' });
    expect(error({ identity: { dev: { caDir: '/x', colour: 'red' } } })).toMatchObject({ key: 'identity.dev.colour', reason: 'unknown key' });
  });

  it('checks policy patterns', () => {
    const ok = parseConfig({ policy: [{ service: 'db-replication', allow: ['spiffe://example.org/ns/db/*', 'spiffe://example.org/admin', '*'] }] });
    expect(ok.policy).toHaveLength(1);
    expect(error({ policy: [{ service: 'db', allow: ['spiffe://example.org/ok', 'example.org/ns/*'] }] })).toMatchObject({ key: 'policy[0].allow[1]' });
    expect(error({ policy: [{ service: 'db', allow: ['spiffe://example.org/a/*/b'] }] })).toMatchObject({ key: 'policy[0].allow[0]' });
    expect(error({ policy: [{ service: 'db' }] })).toMatchObject({ key: 'policy[0].allow', reason: 'is required' });
  });
});
