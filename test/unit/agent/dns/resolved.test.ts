import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { addressBytes, classify, ResolvedClient, ResolvedError, RESOLVE1 } from '../../../../src/agent/dns/resolved';
import { DbusError, type DbusCall } from '../../../../src/agent/systemd/dbus';

/** A bus that records calls and answers each with fail(call) (undefined: success). */
function fakeBus(fail: (c: DbusCall) => Error | undefined = () => undefined, socket?: string) {
  const calls: DbusCall[] = [];
  return {
    calls,
    socketPath: () => socket,
    async call(c: DbusCall) {
      calls.push(c);
      const err = fail(c);
      if (err) throw err;
      return [];
    },
  };
}

const dbusError = (name: string, member = 'SetLinkDNS') => new DbusError(name, `org.freedesktop.resolve1.Manager.${member}: ${name}: nope`, member);

describe('resolved client', () => {
  it('sets servers, routing domains and no default route on the link, without starting resolved', async () => {
    const bus = fakeBus();
    await new ResolvedClient(bus).setLink(7, { servers: ['172.16.1.100', 'fd00::53'], domains: ['my.service', 'other.mesh'] });
    expect(bus.calls.map((c) => [c.member, c.signature, c.body])).toEqual([
      ['SetLinkDNS', 'ia(iay)', [7, [[2, [172, 16, 1, 100]], [10, [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53]]]]],
      ['SetLinkDomains', 'ia(sb)', [7, [['my.service', true], ['other.mesh', true]]]],
      ['SetLinkDefaultRoute', 'ib', [7, false]],
    ]);
    for (const c of bus.calls) expect(c).toMatchObject({ ...RESOLVE1, noAutoStart: true });
  });

  it('reverts a link; a link resolved does not know is no error', async () => {
    const bus = fakeBus((c) => (c.body?.[0] === 9 ? dbusError('org.freedesktop.resolve1.NoSuchLink', 'RevertLink') : undefined));
    const client = new ResolvedClient(bus);
    await client.revertLink(7);
    await client.revertLink(9);
    expect(bus.calls.map((c) => [c.member, c.signature, c.body])).toEqual([
      ['RevertLink', 'i', [7]],
      ['RevertLink', 'i', [9]],
    ]);
  });

  it('tolerates a resolved without SetLinkDefaultRoute', async () => {
    const bus = fakeBus((c) => (c.member === 'SetLinkDefaultRoute' ? dbusError('org.freedesktop.DBus.Error.UnknownMethod', c.member) : undefined));
    await expect(new ResolvedClient(bus).setLink(3, { servers: ['10.0.0.1'], domains: [] })).resolves.toBeUndefined();
  });

  it('says why a call failed: not running, refused, bus absent', async () => {
    const notRunning = await new ResolvedClient(fakeBus(() => dbusError('org.freedesktop.DBus.Error.ServiceUnknown')))
      .setLink(3, { servers: ['10.0.0.1'], domains: [] })
      .catch((e: unknown) => e);
    expect(notRunning).toBeInstanceOf(ResolvedError);
    expect(notRunning).toMatchObject({ why: 'resolved not running', code: 'UNAVAILABLE' });
    expect((notRunning as Error).message).toBe('systemd-resolved SetLinkDNS: resolved not running: org.freedesktop.DBus.Error.ServiceUnknown');

    const refused = await new ResolvedClient(fakeBus(() => dbusError('org.freedesktop.DBus.Error.AccessDenied')))
      .setLink(3, { servers: ['10.0.0.1'], domains: [] })
      .catch((e: unknown) => e);
    expect(refused).toMatchObject({ why: 'call refused' });
    expect((refused as Error).message).toMatch(/^systemd-resolved SetLinkDNS: call refused: .*AccessDenied/);

    const dir = mkdtempSync(path.join(tmpdir(), 'nsm-resolved-'));
    try {
      const bus = fakeBus(undefined, path.join(dir, 'system_bus_socket'));
      const absent = await new ResolvedClient(bus).setLink(3, { servers: ['10.0.0.1'], domains: [] }).catch((e: unknown) => e);
      expect(absent).toMatchObject({ why: 'system bus absent' });
      expect((absent as Error).message).toContain(path.join(dir, 'system_bus_socket'));
      expect(bus.calls).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(classify(new Error('dbus: cannot connect to unix:path=/x: ENOENT'), 'RevertLink').why).toBe('system bus absent');
    expect(classify(dbusError('org.freedesktop.DBus.Error.Disconnected'), 'SetLinkDNS').why).toBe('system bus absent');
    expect(classify(dbusError('org.freedesktop.DBus.Error.NoReply'), 'SetLinkDNS').why).toBe('call failed');
  });

  it('encodes addresses as resolved takes them', () => {
    expect(addressBytes('10.1.2.3')).toEqual([2, [10, 1, 2, 3]]);
    expect(addressBytes('::1')).toEqual([10, [...new Array(15).fill(0), 1]]);
    expect(addressBytes('2001:db8::1:2')).toEqual([10, [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2]]);
    expect(addressBytes('::ffff:10.0.0.1')).toEqual([10, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1]]);
    expect(() => addressBytes('not-an-ip')).toThrow(/not an IP address/);
  });
});
