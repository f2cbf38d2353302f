/**
 * VXLAN network identifiers (as NSM api's vxlan.GenerateRandomVNI): a random 24-bit value,
 * forced even when src ≤ dst and odd otherwise, comparing the two IPs byte by byte (the
 * `orig_*_ip` values when present). Two hosts that request from each other thus never pick
 * the same VNI for their two directions.
 */
import { randomInt } from 'node:crypto';
import { AgentError } from '../../core/errors';
import { parseIp } from '../../sys';

export const MAX_VNI = 0xffffff;

function ipBytes(ip: string): Buffer {
  try {
    const p = parseIp(ip);
    // IPv4 compares as its IPv4-mapped IPv6 form, as Go's net.IP (16 bytes) does.
    return p.family === 4 ? Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]), Buffer.from(p.bytes)]) : Buffer.from(p.bytes);
  } catch {
    throw new AgentError('INVALID_ARGUMENT', `VXLAN: ${JSON.stringify(ip)} is not an IP address`);
  }
}

/** True when the rule wants an even VNI for this (src, dst) pair. */
export function wantsEven(srcIp: string, dstIp: string): boolean {
  return Buffer.compare(ipBytes(srcIp), ipBytes(dstIp)) <= 0;
}

/** True if `vni` obeys the parity rule for (src, dst). */
export function vniFits(vni: number, srcIp: string, dstIp: string): boolean {
  return (vni % 2 === 0) === wantsEven(srcIp, dstIp);
}

/** A random VNI in 1..2^24-1 with the right parity. */
export function randomVni(srcIp: string, dstIp: string, rand: (max: number) => number = randomInt): number {
  const v = rand(MAX_VNI + 1);
  // 0 is not a usable VNI: an even draw of 0 becomes 2.
  return wantsEven(srcIp, dstIp) ? v & ~1 || 2 : v | 1;
}

/** Parses a `vni` parameter: decimal, 1..2^24-1 (0 is not a usable VNI for a tunnel). */
export function parseVni(text: string | undefined): number {
  const v = text ?? '';
  const n = /^\d{1,9}$/.test(v) ? Number(v) : NaN;
  if (!(n >= 1 && n <= MAX_VNI)) {
    throw new AgentError('INVALID_ARGUMENT', `mechanism parameter vni must be 1..${MAX_VNI}, got ${JSON.stringify(v)}`);
  }
  return n;
}
