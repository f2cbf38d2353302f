// SPDX-License-Identifier: Apache-2.0
// Root only: UDP and TCP sockets made inside a namespace by the native addon and run by Node.
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { connect } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { Rtnl, SysError, hostNetns, setLinkUp, tcpServerInNetns, udpSocketInNetns } from '../../../src/sys';
import { tempNetns } from '../../helpers/netns';

const root = process.getuid?.() === 0;

describe.skipIf(!root)('sockets in a namespace', () => {
  const tmp = tempNetns('nssock');
  afterAll(() => tmp.cleanup());

  it('binds UDP and TCP on the namespace loopback; the host loopback does not see them', async () => {
    const ns = await tmp.create();
    await setLinkUp(Rtnl.for(ns), 'lo', true);
    const udp = await udpSocketInNetns(ns.name, '127.0.0.1', 0);
    const port = udp.address().port;
    udp.on('message', (msg, rinfo) => udp.send(Buffer.concat([Buffer.from('re:'), msg]), rinfo.port, rinfo.address));
    // a second socket in the same namespace reaches it; the answer comes back there
    const client = await udpSocketInNetns(ns, '127.0.0.1', 0);
    const answer = new Promise<string>((resolve) => client.once('message', (m) => resolve(m.toString())));
    client.send('ping', port, '127.0.0.1');
    expect(await answer).toBe('re:ping');
    // listed inside the namespace
    const ss = execFileSync('ip', ['netns', 'exec', ns.name, 'ss', '-Hlun'], { encoding: 'utf8' });
    expect(ss).toContain(`127.0.0.1:${port}`);

    const server = await tcpServerInNetns(ns, '127.0.0.1', 0, (s) => s.end('hello'));
    const tcpPort = (server.address() as { port: number }).port;
    const inNs = execFileSync('ip', ['netns', 'exec', ns.name, 'ss', '-Hltn'], { encoding: 'utf8' });
    expect(inNs).toContain(`127.0.0.1:${tcpPort}`);
    const onHost = execFileSync('ss', ['-Hltn'], { encoding: 'utf8' });
    expect(onHost).not.toContain(`127.0.0.1:${tcpPort} `);
    // connect from inside the namespace (not execFileSync: the server runs on this event loop)
    const got = await promisify(execFile)('ip', ['netns', 'exec', ns.name, 'timeout', '5', 'bash', '-c', `exec 3<>/dev/tcp/127.0.0.1/${tcpPort}; cat <&3`], { encoding: 'utf8' });
    expect(got.stdout).toBe('hello');
    // and from the host it is refused
    await expect(
      new Promise((resolve, reject) => {
        const c = connect(tcpPort, '127.0.0.1', () => resolve(c.end()));
        c.on('error', reject);
      }),
    ).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    udp.close();
    client.close();
    await new Promise((r) => server.close(r));
    expect(hostNetns().closed).toBe(false);
  });

  it('fails with errno errors naming the namespace', async () => {
    await expect(udpSocketInNetns('nsmt-nssock-missing', '127.0.0.1', 0)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(udpSocketInNetns('nsmt-x', 'localhost', 0)).rejects.toBeInstanceOf(SysError);
    const ns = await tmp.create();
    await setLinkUp(Rtnl.for(ns), 'lo', true);
    const a = await udpSocketInNetns(ns, '127.0.0.1', 0);
    await expect(udpSocketInNetns(ns, '127.0.0.1', a.address().port)).rejects.toMatchObject({ code: 'EADDRINUSE', syscall: 'bind' });
    await expect(udpSocketInNetns(ns, '10.99.0.1', 0)).rejects.toMatchObject({ code: 'EADDRNOTAVAIL' });
    a.close();
  });
});
