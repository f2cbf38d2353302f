// SPDX-License-Identifier: Apache-2.0
// Keys, UAPI formatting and the port allocator. Interop with `wg pubkey` runs
// when wireguard-tools is installed (no root needed).
import { execFileSync, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { AgentError } from '../../../src/core/errors';
import {
  UdpPortAllocator,
  UapiError,
  formatSet,
  isListenPortTaken,
  reservedPortsWith,
  generateKeyPair,
  hexToKey,
  keyToHex,
  parseGet,
  publicKeyOf,
  validatePublicKey,
  validateWireguardName,
  wireguardMtu,
} from '../../../src/mechanisms/wireguard';

const hasWg = spawnSync('wg', ['--version']).status === 0;

describe('WireGuard keys', () => {
  it('generates base64 32-byte keys and derives the public key', () => {
    const k = generateKeyPair();
    expect(k.privateKey).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(k.publicKey, 'base64')).toHaveLength(32);
    expect(publicKeyOf(k.privateKey)).toBe(k.publicKey);
    expect(generateKeyPair().privateKey).not.toBe(k.privateKey);
    expect(hexToKey(keyToHex(k.publicKey))).toBe(k.publicKey);
  });

  it.skipIf(!hasWg)('interoperates with wg pubkey / wg genkey', () => {
    for (let i = 0; i < 5; i++) {
      const k = generateKeyPair();
      expect(execFileSync('wg', ['pubkey'], { input: k.privateKey + '\n', encoding: 'utf8' }).trim()).toBe(k.publicKey);
    }
    const priv = execFileSync('wg', ['genkey'], { encoding: 'utf8' }).trim();
    expect(publicKeyOf(priv)).toBe(execFileSync('wg', ['pubkey'], { input: priv, encoding: 'utf8' }).trim());
  });

  it('rejects malformed public keys', () => {
    const good = generateKeyPair().publicKey;
    expect(validatePublicKey(good)).toHaveLength(32);
    for (const bad of ['', 'abc', good.slice(0, 43), good + 'A', Buffer.alloc(31).toString('base64'),
      Buffer.alloc(33).toString('base64'), good.replace(/.$/, '!'), `${good.slice(0, 42)}B=`, ` ${good}`]) {
      let err: unknown;
      try {
        validatePublicKey(bad);
      } catch (e) {
        err = e;
      }
      expect(err, bad).toBeInstanceOf(AgentError);
      expect((err as AgentError).code).toBe('INVALID_ARGUMENT');
      expect((err as AgentError).message).toBe('malformed WireGuard public key');
    }
  });
});

describe('UAPI text', () => {
  it('formats a set request with hex keys', () => {
    const a = generateKeyPair();
    const b = generateKeyPair();
    const text = formatSet({
      privateKey: a.privateKey,
      listenPort: 51820,
      replacePeers: true,
      peers: [{ publicKey: b.publicKey, endpoint: '127.0.0.1:51821', persistentKeepalive: 10, allowedIps: ['0.0.0.0/0', '::/0'] }],
    });
    expect(text).toBe(
      `set=1\nprivate_key=${keyToHex(a.privateKey, 'private')}\nlisten_port=51820\nreplace_peers=true\n` +
        `public_key=${keyToHex(b.publicKey)}\nendpoint=127.0.0.1:51821\npersistent_keepalive_interval=10\n` +
        'replace_allowed_ips=true\nallowed_ip=0.0.0.0/0\nallowed_ip=::/0\n',
    );
    expect(() => formatSet({ peers: [{ publicKey: b.publicKey, endpoint: 'x:1' }] })).toThrow(AgentError);
    expect(() => formatSet({ peers: [{ publicKey: b.publicKey, endpoint: '127.0.0.1:51821\nlisten_port=1' }] })).toThrow(AgentError);
  });

  it('parses a get response', () => {
    const b = generateKeyPair();
    const st = parseGet(
      `private_key=${keyToHex(b.privateKey, 'private')}\nlisten_port=51820\npublic_key=${keyToHex(b.publicKey)}\n` +
        'endpoint=127.0.0.1:1\nlast_handshake_time_sec=1700000000\nlast_handshake_time_nsec=5000000\n' +
        'tx_bytes=10\nrx_bytes=20\npersistent_keepalive_interval=10\nallowed_ip=0.0.0.0/0\nallowed_ip=::/0\n',
    );
    expect(st.privateKey).toBe(b.privateKey);
    expect(st.listenPort).toBe(51820);
    expect(st.peers).toHaveLength(1);
    expect(st.peers[0]).toMatchObject({ publicKey: b.publicKey, endpoint: '127.0.0.1:1', rxBytes: 20, txBytes: 10, persistentKeepalive: 10 });
    expect(st.peers[0]?.allowedIps).toEqual(['0.0.0.0/0', '::/0']);
    expect(st.peers[0]?.lastHandshake?.getTime()).toBe(1700000000005);
  });

  it('validates names that reach the wireguard-go argv', () => {
    for (const bad of ['--help', '-h', '', 'a'.repeat(16), 'a b', 'a/b', '..']) {
      expect(() => validateWireguardName(bad), bad).toThrow(AgentError);
    }
    validateWireguardName('nsm-1');
    validateWireguardName('nsmwg0123456789');
    expect(wireguardMtu(1500, 4)).toBe(1440);
    expect(wireguardMtu(1500, 6)).toBe(1420);
  });
});

describe('UDP port allocator', () => {
  it('hands out distinct ports and skips ports in use', async () => {
    const busy = createSocket('udp4');
    await new Promise<void>((r) => busy.bind(0, '127.0.0.1', () => r()));
    const port = busy.address().port;
    try {
      const alloc = new UdpPortAllocator({ min: port, max: port + 2, host: '127.0.0.1' });
      const a = await alloc.allocate();
      const b = await alloc.allocate();
      expect(a).not.toBe(port);
      expect(b).not.toBe(port);
      expect(a).not.toBe(b);
      await expect(alloc.allocate()).rejects.toMatchObject({ code: 'POOL_EXHAUSTED' });
      alloc.release(a);
      expect(await alloc.allocate()).toBe(a);
    } finally {
      busy.close();
    }
  });

  it('adds its range to the reserved ports unless all of it is reserved, and refuses what it cannot read', () => {
    expect(reservedPortsWith('', 51820, 52819)).toBe('51820-52819');
    expect(reservedPortsWith('\n', 51820, 52819)).toBe('51820-52819');
    expect(reservedPortsWith('8080,9000-9100', 51820, 52819)).toBe('8080,9000-9100,51820-52819');
    expect(reservedPortsWith('51820-52819', 51820, 52819)).toBeUndefined();
    expect(reservedPortsWith('51901-53000,50000-51900\n', 51820, 52819)).toBeUndefined(); // covered by two, in any order
    expect(reservedPortsWith('51820-52000,52002-53000', 51820, 52819)).toBe('51820-52000,52002-53000,51820-52819'); // 52001 missing
    expect(reservedPortsWith('51821-52819', 51820, 52819)).toBe('51821-52819,51820-52819');
    expect(() => reservedPortsWith('8080,abc', 51820, 52819)).toThrow(/ip_local_reserved_ports: cannot read/);
  });
});

describe('listen port taken', () => {
  it('is told apart from other UAPI and kernel failures, through wrapping', () => {
    expect(isListenPortTaken(new UapiError(-98, '/x.sock'))).toBe(true);
    expect(new UapiError(-98, '/x.sock').message).toMatch(/errno=-98 \(listen port in use\)/);
    expect(isListenPortTaken(new UapiError(-22, '/x.sock'))).toBe(false);
    expect(isListenPortTaken(AgentError.wrap(new UapiError(-98, '/x.sock'), 'configure'))).toBe(true);
    expect(isListenPortTaken(new AgentError('DATAPLANE', 'errno=-98'))).toBe(false); // by type, not by text
    expect(isListenPortTaken(undefined)).toBe(false);
  });
});
