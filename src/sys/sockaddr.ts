// SPDX-License-Identifier: Apache-2.0
/**
 * struct sockaddr_in and struct sockaddr_in6 as the kernel reads them from a netlink attribute
 * (a WireGuard peer's endpoint): the family in host byte order, port, flow info and addresses in
 * network byte order, the IPv6 scope id in host byte order.
 *
 *   sockaddr_in   (16 bytes): family u16 | port be16 | addr 4 | zero 8
 *   sockaddr_in6  (28 bytes): family u16 | port be16 | flowinfo be32 | addr 16 | scope_id u32
 */
import { endianness } from 'node:os';
import { invalidArgument } from './errors';
import { addressFamily, parseIp } from './ip';

export const SOCKADDR_IN_LEN = 16;
export const SOCKADDR_IN6_LEN = 28;

const littleEndian = endianness() === 'LE';

function writeHost16(b: Buffer, value: number, at: number): void {
  if (littleEndian) b.writeUInt16LE(value, at);
  else b.writeUInt16BE(value, at);
}

function writeHost32(b: Buffer, value: number, at: number): void {
  if (littleEndian) b.writeUInt32LE(value, at);
  else b.writeUInt32BE(value, at);
}

/**
 * The sockaddr of `ip` (IPv4 or IPv6, no zone) and `port`; `scopeId` is the interface index of an
 * IPv6 link-local address (0: none). Throws SysError EINVAL for a bad address or port.
 */
export function encodeSockaddr(ip: string, port: number, scopeId = 0): Buffer {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw invalidArgument('sockaddr', ip, `bad port ${port}`);
  if (!Number.isInteger(scopeId) || scopeId < 0 || scopeId > 0xffffffff) throw invalidArgument('sockaddr', ip, `bad scope id ${scopeId}`);
  const addr = parseIp(ip, 'sockaddr');
  if (addr.family === 4) {
    const b = Buffer.alloc(SOCKADDR_IN_LEN);
    writeHost16(b, addressFamily(4), 0);
    b.writeUInt16BE(port, 2);
    addr.bytes.copy(b, 4);
    return b;
  }
  const b = Buffer.alloc(SOCKADDR_IN6_LEN);
  writeHost16(b, addressFamily(6), 0);
  b.writeUInt16BE(port, 2);
  // flowinfo (bytes 4..7) stays 0
  addr.bytes.copy(b, 8);
  writeHost32(b, scopeId, 24);
  return b;
}
