// What a restarted agent does with the WireGuard devices a previous run left: the adoption
// decision for a wireguard-go device given what the probes found, and what reaping removes.
import { describe, expect, it } from 'vitest';
import { reapPlanOf, refusal, wireguardGoAdoption } from '../../../../src/mechanisms/wireguard/leftovers';
import { parseEndpoint } from '../../../../src/mechanisms/wireguard/names';
import type { WireguardSnapshot } from '../../../../src/mechanisms/wireguard';

describe('adopting a leftover wireguard-go device', () => {
  it('takes a running, answering process with its link back as it is', () => {
    expect(wireguardGoAdoption({ process: true, uapi: true, link: true })).toEqual({ take: 'as-is' });
  });

  it('refuses an answering process whose link is gone (the caller reaps it)', () => {
    expect(wireguardGoAdoption({ process: true, uapi: true, link: false })).toEqual({ take: 'no' });
  });

  it('starts a device whose process is gone again, killing nothing', () => {
    expect(wireguardGoAdoption({ process: false, uapi: false, link: false })).toEqual({ take: 'respawn', kill: false });
    // a link that outlived its process does not change that: the new process makes a new TUN
    expect(wireguardGoAdoption({ process: false, uapi: false, link: true })).toEqual({ take: 'respawn', kill: false });
  });

  it('kills a process that no longer answers before starting it again', () => {
    expect(wireguardGoAdoption({ process: true, uapi: false, link: false })).toEqual({ take: 'respawn', kill: true });
  });

  it('names the namespace or the link that is missing', () => {
    const snap: WireguardSnapshot = { impl: 'wireguard-go', hostName: 'nsmwg0123456789', netns: '/run/netns/x', name: 'nsm-1' };
    expect(refusal(snap, 'netns', new Error('ENOENT'))).toMatchObject({ code: 'NETNS_NOT_FOUND', message: expect.stringMatching(/\/run\/netns\/x is gone/) });
    expect(refusal(snap, 'link')).toMatchObject({ code: 'DATAPLANE', message: expect.stringMatching(/link nsm-1 not found/) });
    expect(refusal({ ...snap, netns: undefined }, 'link').message).toMatch(/link nsmwg0123456789 not found/);
  });
});

describe('reaping a leftover device', () => {
  it('stops a wireguard-go by PID, removes its socket and log, and deletes its link where it was moved', () => {
    const plan = reapPlanOf({ impl: 'wireguard-go', hostName: 'nsmwg0123456789', pid: 4242, netns: '/run/netns/x', name: 'nsm-1' });
    expect(plan).toEqual({
      pid: 4242,
      files: ['/var/run/wireguard/nsmwg0123456789.sock', '/var/run/wireguard/nsmwg0123456789.log'],
      link: { netns: '/run/netns/x', name: 'nsm-1' },
    });
  });

  it('deletes a link never moved under its temporary name in the host namespace', () => {
    expect(reapPlanOf({ impl: 'wireguard-go', hostName: 'nsmwg0123456789', name: 'nsmwg0123456789' }).link).toEqual({ name: 'nsmwg0123456789' });
  });

  it('for kernel WireGuard, deletes only the link: no process, no files', () => {
    expect(reapPlanOf({ impl: 'kernel', hostName: 'nsmwg0123456789', pid: 99, netns: '/run/netns/x', name: 'nsm-1' })).toEqual({
      files: [],
      link: { netns: '/run/netns/x', name: 'nsm-1' },
    });
  });
});

describe('peer endpoints', () => {
  it('splits IPv4 and bracketed IPv6 endpoints', () => {
    expect(parseEndpoint('192.0.2.1:51820')).toEqual({ ip: '192.0.2.1', port: 51820 });
    expect(parseEndpoint('[2001:db8::1]:51821')).toEqual({ ip: '2001:db8::1', port: 51821 });
  });

  it('refuses malformed endpoints with INVALID_ARGUMENT', () => {
    for (const e of ['192.0.2.1', '2001:db8::1:5', '[2001:db8::1]', '[fe80::1%eth0]:1', '999.0.0.1:1', '192.0.2.1:70000', '[nope]:1']) {
      expect(() => parseEndpoint(e), e).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    }
  });
});
