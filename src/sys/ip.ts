// SPDX-License-Identifier: Apache-2.0
/**
 * Text <-> wire forms of IP addresses, CIDR prefixes and MAC addresses, for
 * netlink attributes. Invalid input throws SysError EINVAL naming the value.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { invalidArgument } from './errors';

export type IpFamily = 4 | 6;

export interface IpAddress {
  family: IpFamily;
  /** 4 or 16 bytes, network order. */
  bytes: Buffer;
}

export interface IpPrefix extends IpAddress {
  prefixLen: number;
}

/** AF_INET / AF_INET6 for a family. */
export function addressFamily(family: IpFamily): number {
  return family === 4 ? 2 : 10;
}

/** Parses '10.0.0.1' or 'fd00::1' (no zone ids). */
export function parseIp(text: string, syscall = 'parse'): IpAddress {
  if (isIPv4(text)) return { family: 4, bytes: Buffer.from(text.split('.').map(Number)) };
  if (isIPv6(text) && !text.includes('%')) return { family: 6, bytes: parseIPv6(text) };
  throw invalidArgument(syscall, text, 'not an IPv4 or IPv6 address');
}

/** Parses 'addr/len'; a bare address means a host prefix (/32 or /128). */
export function parseCidr(text: string, syscall = 'parse'): IpPrefix {
  const slash = text.indexOf('/');
  const addr = parseIp(slash < 0 ? text : text.slice(0, slash), syscall);
  const max = addr.family === 4 ? 32 : 128;
  if (slash < 0) return { ...addr, prefixLen: max };
  const lenText = text.slice(slash + 1);
  const prefixLen = Number(lenText);
  if (!/^\d{1,3}$/.test(lenText) || prefixLen > max) {
    throw invalidArgument(syscall, text, `prefix length must be 0..${max}`);
  }
  return { ...addr, prefixLen };
}

function parseIPv6(text: string): Buffer {
  const words: number[] = [];
  const toWords = (part: string): number[] =>
    part === ''
      ? []
      : part.split(':').flatMap((group) => {
          if (!group.includes('.')) return [parseInt(group, 16)];
          const [a = 0, b = 0, c = 0, d = 0] = group.split('.').map(Number);
          return [(a << 8) | b, (c << 8) | d];
        });
  const gap = text.indexOf('::');
  if (gap < 0) {
    words.push(...toWords(text));
  } else {
    const head = toWords(text.slice(0, gap));
    const tail = toWords(text.slice(gap + 2));
    words.push(...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail);
  }
  const out = Buffer.alloc(16);
  words.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  return out;
}

/** Formats 4 or 16 bytes; IPv6 in RFC 5952 canonical form. */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  if (bytes.length !== 16) throw invalidArgument('format', undefined, `bad address length ${bytes.length}`);
  const buf = Buffer.from(bytes);
  const words = Array.from({ length: 8 }, (_, i) => buf.readUInt16BE(i * 2));
  // IPv4-mapped ::ffff:a.b.c.d
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    return `::ffff:${Array.from(bytes.subarray(12)).join('.')}`;
  }
  // Longest run (>= 2) of zero words becomes '::' (first one on ties).
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Parses 'aa:bb:cc:dd:ee:ff' (also '-' separated). */
export function parseMac(text: string, syscall = 'parse'): Buffer {
  if (!/^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$/.test(text)) {
    throw invalidArgument(syscall, text, 'not a MAC address (aa:bb:cc:dd:ee:ff)');
  }
  return Buffer.from(text.split(/[:-]/).map((h) => parseInt(h, 16)));
}

/** Lower-case colon form of a link-layer address. */
export function formatMac(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(':');
}
