/** Where the agent says it is reached: the endpoints' URL and the embedded registry's address. */
import { describe, it, expect } from 'vitest';
import { advertisedUrl, registryListenAddress } from '../../../src/agent/listeners';

const unix = '/run/nsm-agent/agent.sock';

describe('advertisedUrl', () => {
  it('is the unix socket without a TCP listener', () => {
    expect(advertisedUrl({ unix, allowUids: [] }, '10.0.0.1')).toBe(`unix://${unix}`);
  });
  it('is the TCP listener, with the underlay address for an unspecified host', () => {
    expect(advertisedUrl({ unix, tcp: '192.168.1.5:5001', allowUids: [] }, '10.0.0.1')).toBe('tcp://192.168.1.5:5001');
    expect(advertisedUrl({ unix, tcp: '0.0.0.0:5001', allowUids: [] }, '10.0.0.1')).toBe('tcp://10.0.0.1:5001');
    expect(advertisedUrl({ unix, tcp: '[::]:5001', allowUids: [] }, 'fd00::1')).toBe('tcp://[fd00::1]:5001');
    expect(advertisedUrl({ unix, tcp: ':5001', allowUids: [] }, undefined)).toBe(`unix://${unix}`);
  });
  it('behind NAT (publicIP) is the public address with the listener\'s port', () => {
    expect(advertisedUrl({ unix, tcp: '192.168.1.5:5001', allowUids: [] }, '192.168.1.5', '203.0.113.5')).toBe('tcp://203.0.113.5:5001');
    expect(advertisedUrl({ unix, tcp: '[::]:5001', allowUids: [] }, 'fd00::1', '2001:db8::5')).toBe('tcp://[2001:db8::5]:5001');
    expect(advertisedUrl({ unix, allowUids: [] }, '192.168.1.5', '203.0.113.5')).toBe(`unix://${unix}`);
  });
});

describe('registryListenAddress', () => {
  const registry = { url: 'embedded', store: 'memory' as const, etcd: [], expirationMs: 60_000 };
  it('is registry.listen, else port 5002 on the TCP listener\'s host, else none', () => {
    expect(registryListenAddress({ listen: { unix, allowUids: [] }, registry: { ...registry, listen: '127.0.0.1:7000' } })).toBe('127.0.0.1:7000');
    expect(registryListenAddress({ listen: { unix, tcp: '[::]:5001', allowUids: [] }, registry })).toBe('[::]:5002');
    expect(registryListenAddress({ listen: { unix, allowUids: [] }, registry })).toBeUndefined();
  });
});
