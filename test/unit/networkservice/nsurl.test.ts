import { describe, it, expect } from 'vitest';
import { AgentError } from '../../../src/core/errors';
import { parseNsURL, mechanismOf } from '../../../src/networkservice/nsurl';

describe('parseNsURL', () => {
  it.each<[string, { mechanism: string; networkService: string; interfaceName?: string; labels: Record<string, string> }]>([
    ['kernel://kernel2ip2kernel/nsm-1', { mechanism: 'KERNEL', networkService: 'kernel2ip2kernel', interfaceName: 'nsm-1', labels: {} }],
    ['kernel://svc@my.cluster2/nsm-1', { mechanism: 'KERNEL', networkService: 'svc@my.cluster2', interfaceName: 'nsm-1', labels: {} }],
    ['icmp-responder/nsm-1?app=pg&tier=db', { mechanism: 'KERNEL', networkService: 'icmp-responder', interfaceName: 'nsm-1', labels: { app: 'pg', tier: 'db' } }],
    ['memif://my-vpp-service?A=1&B=2&C=3', { mechanism: 'MEMIF', networkService: 'my-vpp-service', labels: { A: '1', B: '2', C: '3' } }],
    ['vfio://second-service?sriovToken=intel/10G', { mechanism: 'VFIO', networkService: 'second-service', labels: { sriovToken: 'intel/10G' } }],
    ['kernel://db-replication/nsm-1?app=pg&app=mysql&x=a%20b', { mechanism: 'KERNEL', networkService: 'db-replication', interfaceName: 'nsm-1', labels: { app: 'pg,mysql', x: 'a b' } }],
    ['kernel://ns/deep/path/eth1', { mechanism: 'KERNEL', networkService: 'ns', interfaceName: 'eth1', labels: {} }],
  ])('%s', (url, want) => {
    const u = parseNsURL(url);
    expect(u).toMatchObject({ ...want, mechanismType: want.mechanism });
    if (want.interfaceName === undefined) expect(u.interfaceName).toBeUndefined();
  });

  it('builds the LOCAL mechanism with the interface name', () => {
    expect(mechanismOf(parseNsURL('kernel://ns/nsm-1'))).toEqual({ cls: 'LOCAL', type: 'KERNEL', parameters: { name: 'nsm-1' } });
    expect(mechanismOf(parseNsURL('kernel://ns'))).toEqual({ cls: 'LOCAL', type: 'KERNEL', parameters: {} });
  });

  it.each<[string, AgentError['code'], RegExp]>([
    ['', 'INVALID_ARGUMENT', /empty/],
    ['kernel:///nsm-1', 'INVALID_ARGUMENT', /network service name is missing/],
    ['kernel://bad_name!/nsm-1', 'INVALID_ARGUMENT', /bad network service name/],
    ['kernel://svc@/nsm-1', 'INVALID_ARGUMENT', /bad domain/],
    ['kernel://svc/nsm 1', 'INVALID_ARGUMENT', /whitespace/],
    ['kernel://svc/nsm-1#frag', 'INVALID_ARGUMENT', /fragment/],
    ['kernel://svc/nsm-1?a=1;b=2', 'INVALID_ARGUMENT', /";"/],
    ['kernel://svc/nsm-1?=v', 'INVALID_ARGUMENT', /empty name/],
    ['kernel://svc/nsm-1?a=%zz', 'INVALID_ARGUMENT', /malformed query/],
    ['1kernel://svc/nsm-1', 'INVALID_ARGUMENT', /malformed scheme/],
    ['kernel://svc/', 'INVALID_INTERFACE_NAME', /must not be empty/],
    ['kernel://svc/a-very-long-interface', 'INVALID_INTERFACE_NAME', /longer than 15/],
    ['kernel://svc/..', 'INVALID_INTERFACE_NAME', /characters/],
  ])('rejects %j', (url, code, message) => {
    let err: unknown;
    try {
      parseNsURL(url);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AgentError);
    expect((err as AgentError).code).toBe(code);
    expect((err as AgentError).message).toMatch(message);
  });
});
