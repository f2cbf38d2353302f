import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { DbusError, SystemBus } from '../../../src/agent/systemd/dbus';

const haveDaemon = existsSync('/usr/bin/dbus-daemon');

describe.skipIf(!haveDaemon)('SystemBus against a private dbus-daemon', () => {
  let dir: string;
  let daemon: ChildProcess;
  let address: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nsm-dbus-'));
    address = `unix:path=${join(dir, 'bus')}`;
    daemon = spawn('dbus-daemon', ['--session', '--nofork', `--address=${address}`, '--print-address=1'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      daemon.stdout!.once('data', () => resolve());
      daemon.once('exit', (code) => reject(new Error(`dbus-daemon exited ${code}`)));
    });
  });

  afterAll(() => {
    daemon?.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  it('calls a method and returns its reply body', async () => {
    const bus = new SystemBus(address);
    try {
      const [names] = await bus.call({
        destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus',
        interface: 'org.freedesktop.DBus', member: 'ListNames',
      });
      expect(names).toContain('org.freedesktop.DBus');
    } finally {
      bus.close();
    }
  });

  it('turns an error reply into a DbusError with its D-Bus name', async () => {
    const bus = new SystemBus(address);
    try {
      const err = await bus.call({
        destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus',
        interface: 'org.freedesktop.DBus', member: 'GetNameOwner', signature: 's', body: ['org.example.Nobody'],
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DbusError);
      expect((err as DbusError).name).toBe('org.freedesktop.DBus.Error.NameHasNoOwner');
      expect((err as Error).message).toContain('GetNameOwner');
    } finally {
      bus.close();
    }
  });

  it('fails clearly when the bus socket does not exist', async () => {
    const bus = new SystemBus(`unix:path=${join(dir, 'absent')}`);
    const err = await bus.call({
      destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus',
      interface: 'org.freedesktop.DBus', member: 'ListNames',
    }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/absent/);
    bus.close();
  });
});
