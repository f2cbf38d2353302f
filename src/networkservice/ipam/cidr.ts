/**
 * IPv4/IPv6 prefixes as bigints, for address pools. Text forms follow Node's net module
 * (IPv6 printed compressed, lower-case).
 */
import net from 'node:net';

export interface Prefix {
  readonly family: 4 | 6;
  /** The address as written (not masked), as a number. */
  readonly addr: bigint;
  readonly bits: number;
}

const WIDTH = { 4: 32, 6: 128 } as const;

export function parseIp(text: string): { family: 4 | 6; value: bigint } | undefined {
  if (net.isIPv4(text)) return { family: 4, value: text.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n) };
  const value = parseIpv6(text);
  return value === undefined ? undefined : { family: 6, value };
}

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/**
 * An IPv6 address in its textual forms (RFC 4291 2.2), without the embedded IPv4 and zone forms,
 * which pools do not use. Parsed here rather than checked with net.isIPv6 first: the first call
 * of that compiles a large regular expression, some milliseconds of the agent's start.
 */
function parseIpv6(text: string): bigint | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groupsOf = (part: string): string[] => (part === '' ? [] : part.split(':'));
  const head = groupsOf(halves[0]!);
  const tail = halves.length === 2 ? groupsOf(halves[1]!) : [];
  const given = head.length + tail.length;
  if (halves.length === 2 ? given > 7 : given !== 8) return undefined;
  if (![...head, ...tail].every((g) => HEX_GROUP.test(g))) return undefined;
  const groups = [...head, ...Array<string>(8 - given).fill('0'), ...tail];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

export function formatIp(family: 4 | 6, value: bigint): string {
  if (family === 4) {
    return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 255n)).join('.');
  }
  const groups = Array.from({ length: 8 }, (_, i) => ((value >> BigInt(112 - 16 * i)) & 0xffffn).toString(16));
  // compress the longest run of zero groups (length >= 2), as RFC 5952 says
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** Parses "a.b.c.d/n" or "x::y/n"; a bare address is a host prefix. Undefined if invalid. */
export function parsePrefix(text: string): Prefix | undefined {
  const [ip = '', len, extra] = text.trim().split('/');
  if (extra !== undefined) return undefined;
  const parsed = parseIp(ip);
  if (!parsed) return undefined;
  const width = WIDTH[parsed.family];
  const bits = len === undefined ? width : /^\d+$/.test(len) ? Number(len) : NaN;
  if (!(bits >= 0 && bits <= width)) return undefined;
  return { family: parsed.family, addr: parsed.value, bits };
}

export function width(p: Pick<Prefix, 'family'>): number {
  return WIDTH[p.family];
}

/** First address of the prefix (masked). */
export function networkOf(p: Prefix): bigint {
  const host = width(p) - p.bits;
  return (p.addr >> BigInt(host)) << BigInt(host);
}

export function sizeOf(p: Prefix): bigint {
  return 1n << BigInt(width(p) - p.bits);
}

export function contains(p: Prefix, family: 4 | 6, value: bigint): boolean {
  if (p.family !== family) return false;
  const start = networkOf(p);
  return value >= start && value < start + sizeOf(p);
}

export function overlaps(a: Prefix, b: Prefix): boolean {
  if (a.family !== b.family) return false;
  const as = networkOf(a);
  const bs = networkOf(b);
  return as < bs + sizeOf(b) && bs < as + sizeOf(a);
}

export function formatPrefix(p: Prefix): string {
  return `${formatIp(p.family, p.addr)}/${p.bits}`;
}

/** The host prefix (/32 or /128) of an address. */
export function hostPrefix(family: 4 | 6, value: bigint): string {
  return `${formatIp(family, value)}/${WIDTH[family]}`;
}

/** The prefix with its host bits cleared: 172.16.1.0/16 is 172.16.0.0/16. */
export function masked(p: Prefix): Prefix {
  return { family: p.family, addr: networkOf(p), bits: p.bits };
}

/**
 * Parses "addr/len" (the length is required) and clears the host bits, as a network prefix
 * on the wire may carry them (Go's IPNet.String keeps them). Undefined if invalid.
 */
export function parseNetwork(text: string): Prefix | undefined {
  if (!text.includes('/')) return undefined;
  const p = parsePrefix(text);
  return p && masked(p);
}

/** Whether `inner` lies wholly inside `outer`. */
export function within(outer: Prefix, inner: Prefix): boolean {
  return inner.family === outer.family && inner.bits >= outer.bits && contains(outer, inner.family, networkOf(inner));
}

/**
 * The first prefix of length `bits` inside `outer`, aligned on its own size, that overlaps
 * none of `taken`; undefined when there is none. Works on the ranges, not on the candidates,
 * so a /64 split into /112s costs as little as a /16 split into /24s.
 */
export function firstFreeSubnet(outer: Prefix, bits: number, taken: readonly Prefix[]): Prefix | undefined {
  if (bits < outer.bits || bits > width(outer)) return undefined;
  const size = 1n << BigInt(width(outer) - bits);
  const end = networkOf(outer) + sizeOf(outer);
  const ranges = taken
    .filter((t) => overlaps(t, outer))
    .map((t) => [networkOf(t), networkOf(t) + sizeOf(t)] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  let candidate = networkOf(outer);
  for (const [start, stop] of ranges) {
    if (stop <= candidate) continue;
    if (start >= candidate + size) break;
    candidate = ((stop + size - 1n) / size) * size; // the next aligned start after this range
  }
  return candidate + size <= end ? { family: outer.family, addr: candidate, bits } : undefined;
}
