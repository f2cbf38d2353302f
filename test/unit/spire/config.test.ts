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
