/** sendDatagram against a real unix datagram socket (bound by python3), as journald's socket is. */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it, expect } from 'vitest';
import { sendDatagram, SysError } from '../../../src/sys';
import { encodeEntry, journalFields } from '../../../src/agent/journald';

describe('sendDatagram', () => {
  it('delivers one datagram as is; a missing socket is ENOENT', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'nsmt-dgram-'));
    const sock = path.join(dir, 'journal.sock');
    const py = spawn('python3', ['-c', `import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind(${JSON.stringify(sock)})\nprint('ready',flush=True)\nd=s.recv(65536)\nsys.stdout.write(d.hex())\n`], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      let out = '';
      py.stdout!.on('data', (d) => (out += d));
      await new Promise<void>((r) => py.stdout!.once('data', () => r()));
      const entry = encodeEntry(journalFields('info', 'connected', { id: 'c-1', service: 'icmp-responder', detail: 'two\nlines' }));
      sendDatagram(sock, entry);
      await new Promise((r) => py.once('exit', r));
      expect(Buffer.from(out.replace(/^ready\n/, ''), 'hex')).toEqual(entry);
      expect(() => sendDatagram(path.join(dir, 'none.sock'), Buffer.from('x'))).toThrow(SysError);
      try {
        sendDatagram(path.join(dir, 'none.sock'), Buffer.from('x'));
      } catch (err) {
        expect((err as SysError).code).toBe('ENOENT');
      }
    } finally {
      py.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
