// SPDX-License-Identifier: Apache-2.0
// Root only: sysctl per namespace, TUN devices, sd_notify. Any user: the process's memory,
// generic netlink's controller, a synchronous exchange on a unix socket.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import v8 from 'node:v8';
import { Rtnl, SysError, genlFamilyId, getLink, getSysctl, hostNetns, openTun, releaseMemory, sdNotify, setSysctl, sysctlPath, unixCall } from '../../../src/sys';
import { tempNetns } from '../../helpers/netns';

const root = process.getuid?.() === 0;

/** What `fn` throws (undefined if it returns). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

describe('sysctlPath', () => {
  it('maps dotted and path forms, rejects escapes', () => {
    expect(sysctlPath('net.ipv4.ping_group_range')).toBe('/proc/sys/net/ipv4/ping_group_range');
    expect(sysctlPath('net/ipv4/conf/eth0.100/forwarding')).toBe('/proc/sys/net/ipv4/conf/eth0.100/forwarding');
    expect(sysctlPath('/proc/sys/net/ipv4/ip_forward')).toBe('/proc/sys/net/ipv4/ip_forward');
    expect(() => sysctlPath('net/../../etc/passwd')).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => sysctlPath('/etc/passwd')).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });
});

describe.skipIf(!root)('sysctl, tun', () => {
  const tmp = tempNetns('misc');
  afterAll(async () => {
    await tmp.cleanup();
    Rtnl.closeAll();
  });

  it('sets a sysctl inside a namespace without touching the host', async () => {
    const ns = await tmp.create();
    const key = 'net.ipv4.ping_group_range';
    const hostValue = getSysctl(hostNetns(), key);
    setSysctl(ns, key, '0 2147483647');
    expect(getSysctl(ns, key)).toBe('0\t2147483647');
    expect(getSysctl(hostNetns(), key)).toBe(hostValue);
    expect(readFileSync('/proc/sys/net/ipv4/ping_group_range', 'utf8').trim()).toBe(hostValue);
  });

  it('reports sysctl errors as SysError with the path', async () => {
    const ns = await tmp.create();
    const err = thrown(() => setSysctl(ns, 'net.ipv4.conf.nsmt-nope.forwarding', '1'));
    expect(err).toBeInstanceOf(SysError);
    expect(err).toMatchObject({ code: 'ENOENT', path: '/proc/sys/net/ipv4/conf/nsmt-nope/forwarding' });
  });

  it('opens a TUN inside a namespace; it disappears with its fd', async () => {
    const ns = await tmp.create();
    const tun = openTun('nsmt-tun%d', {}, ns);
    try {
      expect(tun.name).toBe('nsmt-tun0');
      expect(tun.fd).toBeGreaterThan(2);
      expect(await getLink(Rtnl.for(ns), tun.name)).toMatchObject({ kind: 'tun', name: 'nsmt-tun0' });
      expect(await getLink(Rtnl.for(hostNetns()), tun.name)).toBeUndefined();
    } finally {
      closeSync(tun.fd);
    }
    expect(await getLink(Rtnl.for(ns), tun.name)).toBeUndefined();

    const q1 = openTun('nsmt-mq', { tap: true, multiQueue: true }, ns);
    const q2 = openTun('nsmt-mq', { tap: true, multiQueue: true }, ns);
    try {
      expect((await getLink(Rtnl.for(ns), 'nsmt-mq'))?.mac).toBeDefined(); // TAP: L2
      expect(() => openTun('nsmt-mq', {}, ns)).toThrow(expect.objectContaining({ code: 'EINVAL', syscall: 'ioctl(TUNSETIFF)' }));
    } finally {
      closeSync(q1.fd);
      closeSync(q2.fd);
    }
    expect(() => openTun('nsmt-0123456789x')).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });
});

describe('sdNotify', () => {
  const saved = process.env['NOTIFY_SOCKET'];
  afterAll(() => {
    if (saved === undefined) delete process.env['NOTIFY_SOCKET'];
    else process.env['NOTIFY_SOCKET'] = saved;
  });

  it('returns false without NOTIFY_SOCKET', () => {
    delete process.env['NOTIFY_SOCKET'];
    expect(sdNotify('READY=1')).toBe(false);
  });

  it('fails with a SysError when the socket does not exist', () => {
    process.env['NOTIFY_SOCKET'] = '/nonexistent/nsmt-notify.sock';
    expect(() => sdNotify('READY=1')).toThrow(expect.objectContaining({ code: 'ENOENT', syscall: 'sendto' }));
  });

  it.skipIf(!existsSync('/usr/bin/python3'))('delivers the datagram to a path and an abstract socket', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nsmt-notify-'));
    try {
      for (const address of [join(dir, 'notify.sock'), `@nsmt-notify-${process.pid}`]) {
        // Node cannot receive unix datagrams; a one-shot python receiver can.
        const bindArg = address.startsWith('@') ? `'\\0' + ${JSON.stringify(address.slice(1))}` : JSON.stringify(address);
        const receiver = spawn('python3', [
          '-c',
          `import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind(${bindArg})\nprint('ready',flush=True)\ns.settimeout(5)\nprint(s.recv(4096).decode(),flush=True)`,
        ]);
        let output = '';
        const lines = new Promise<void>((resolve) => {
          receiver.stdout.on('data', (d: Buffer) => {
            output += d.toString();
            if (output.split('\n').length > 2) resolve();
          });
        });
        const exited = new Promise((resolve) => receiver.on('exit', resolve));
        await new Promise<void>((resolve) => receiver.stdout.once('data', () => resolve()));
        process.env['NOTIFY_SOCKET'] = address;
        expect(sdNotify('READY=1\nSTATUS=nsmt')).toBe(true);
        await lines;
        await exited;
        expect(output).toBe('ready\nREADY=1\nSTATUS=nsmt\n');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('releaseMemory', () => {
  it('gives back the pages of a heap whose objects died, and compiled code only when asked', () => {
    // objects that survive young collections while made, so that they die in the old generation
    let junk: { i: number; s: string }[] | undefined = [];
    for (let i = 0; i < 400_000; i++) junk.push({ i, s: `junk ${i}` });
    expect(junk.length).toBe(400_000);
    junk = undefined;
    const before = process.memoryUsage().heapTotal;
    const bytecode = () => v8.getHeapCodeStatistics().bytecode_and_metadata_size;
    expect(typeof releaseMemory()).toBe('boolean');
    const after = process.memoryUsage().heapTotal;
    expect(after).toBeLessThan(before - 16 * 2 ** 20);
    // the plain release keeps the code of functions that ran (this test's runner's among them)
    const kept = bytecode();
    releaseMemory({ compiledCode: true });
    expect(bytecode()).toBeLessThan(kept * 0.7);
  });
});

describe('genlFamilyId', () => {
  it("asks the kernel's controller: its own family is 0x10, a made-up one has none", async () => {
    expect(await genlFamilyId('nlctrl')).toBe(0x10);
    expect(await genlFamilyId('nsm-no-such-family')).toBeUndefined();
  });
});

describe('unixCall', () => {
  // The call blocks this process, so the server is another one: python, one thread a client.
  const SERVER = [
    'import socket,sys,threading',
    's=socket.socket(socket.AF_UNIX,socket.SOCK_STREAM); s.bind(sys.argv[1]); s.listen(8)',
    'u=socket.socket(socket.AF_UNIX,socket.SOCK_STREAM); u.bind(sys.argv[2])  # bound, not listening',
    "print('ready',flush=True)",
    'def serve(c):',
    "  data=b''",
    "  while not data.endswith(b'\\n'):",
    '    d=c.recv(4096)',
    '    if not d: break',
    '    data+=d',
    '  try:',
    "    if data.startswith(b'echo'): c.sendall(data)",
    "    elif data.startswith(b'big'): c.sendall(b'x'*300000)",
    "    elif data.startswith(b'hang'): threading.Event().wait(30)",
    '  except OSError: pass  # the client gave up (EMSGSIZE)',
    '  c.close()',
    'while True:',
    '  c,_=s.accept(); threading.Thread(target=serve,args=(c,),daemon=True).start()',
  ].join('\n');

  it.skipIf(!existsSync('/usr/bin/python3'))('makes one exchange and says why one cannot be made', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nsmt-unixcall-'));
    const sock = join(dir, 'server.sock');
    const refused = join(dir, 'refused.sock');
    const server = spawn('python3', ['-c', SERVER, sock, refused], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((resolve) => server.on('exit', resolve));
    try {
      await new Promise<void>((resolve) => server.stdout.once('data', () => resolve()));
      const call = (path: string, text: string, timeoutMs = 5_000, maxBytes = 1 << 20) => unixCall(path, Buffer.from(text), { timeoutMs, maxBytes });
      expect(call(sock, 'echo hello\n').toString()).toBe('echo hello\n');
      expect(call(sock, 'big\n').length).toBe(300_000);
      expect(thrown(() => call(sock, 'big\n', 5_000, 100_000))).toMatchObject({ code: 'EMSGSIZE', path: sock });
      const t0 = Date.now();
      expect(thrown(() => call(sock, 'hang\n', 300))).toMatchObject({ code: 'ETIMEDOUT', path: sock });
      expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
      expect(Date.now() - t0).toBeLessThan(5_000);
      expect(thrown(() => call(join(dir, 'none.sock'), 'echo\n'))).toMatchObject({ code: 'ENOENT', syscall: 'connect' });
      expect(thrown(() => call(refused, 'echo\n'))).toMatchObject({ code: 'ECONNREFUSED', syscall: 'connect' });
      expect(thrown(() => call(join(dir, 'x'.repeat(120)), 'echo\n'))).toMatchObject({ code: 'ENAMETOOLONG' });
      expect(thrown(() => call(sock, 'echo\n', 5_000, 1))).toBeInstanceOf(SysError);
    } finally {
      server.kill();
      await exited;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
