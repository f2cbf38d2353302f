/**
 * A point-to-point address pool, NSM's point2pointipam: each connection takes the first free
 * address for the endpoint side and the second for the client side, as host prefixes. The
 * network address is not skipped (172.16.1.100/31 gives .100 to the endpoint, .101 to the client).
 */
import { AgentError } from '../../core/errors';
import { Prefix, parsePrefix, networkOf, sizeOf, contains, parseIp, hostPrefix, overlaps, formatPrefix, masked } from './cidr';

export interface Pair {
  family: 4 | 6;
  /** Endpoint side. */
  dst: bigint;
  /** Client side. */
  src: bigint;
}

export class AddressPool {
  private readonly prefixes: Prefix[];
  private readonly used = new Map<string, Pair[]>(); // connection id -> pairs
  private readonly taken = new Set<string>(); // `${family}:${value}`

  constructor(cidrs: string[], private readonly excluded: Prefix[] = []) {
    this.prefixes = cidrs.map((c) => {
      const p = parsePrefix(c);
      if (!p) throw new AgentError('INVALID_ARGUMENT', `invalid pool prefix ${c}`);
      return p;
    });
  }

  /** The pairs held by a connection, if any. */
  get(id: string): Pair[] | undefined {
    return this.used.get(id);
  }

  get size(): number {
    return this.used.size;
  }

  /**
   * Allocates (or returns the existing) pairs for a connection, one per pool prefix. `wanted`
   * are addresses the connection already carries (a refresh, or a restart): they are kept when
   * they belong to the pool and are free. `excluded` are prefixes the request excludes: when
   * they are what leaves no free pair (there would be one without them), ADDRESS_OVERLAP
   * naming the pool and those of them that overlap it; POOL_EXHAUSTED otherwise.
   */
  allocate(id: string, wanted: { src: string[]; dst: string[] }, excluded: string[] = []): Pair[] {
    const existing = this.used.get(id);
    if (existing) return existing;
    const extra = excluded.map(parsePrefix).filter((p): p is Prefix => !!p);
    const pairs: Pair[] = [];
    try {
      for (const prefix of this.prefixes) {
        const pair = this.reuse(prefix, wanted) ?? this.freshOutside(prefix, extra);
        this.taken.add(`${pair.family}:${pair.dst}`);
        this.taken.add(`${pair.family}:${pair.src}`);
        pairs.push(pair);
      }
    } catch (err) {
      for (const p of pairs) this.free(p);
      throw err;
    }
    this.used.set(id, pairs);
    return pairs;
  }

  release(id: string): void {
    const pairs = this.used.get(id);
    if (!pairs) return;
    for (const p of pairs) this.free(p);
    this.used.delete(id);
  }

  private free(p: Pair): void {
    this.taken.delete(`${p.family}:${p.dst}`);
    this.taken.delete(`${p.family}:${p.src}`);
  }

  private usable(prefix: Prefix, family: 4 | 6, value: bigint, extra: Prefix[]): boolean {
    if (!contains(prefix, family, value)) return false;
    if (this.taken.has(`${family}:${value}`)) return false;
    return ![...this.excluded, ...extra].some((x) => contains(x, family, value));
  }

  private reuse(prefix: Prefix, wanted: { src: string[]; dst: string[] }): Pair | undefined {
    const pick = (list: string[]) =>
      list
        .map((c) => parseIp(c.split('/')[0] ?? ''))
        .find((ip) => ip && ip.family === prefix.family && this.usable(prefix, ip.family, ip.value, []));
    const dst = pick(wanted.dst);
    const src = pick(wanted.src);
    if (!dst || !src || dst.value === src.value) return undefined;
    return { family: prefix.family, dst: dst.value, src: src.value };
  }

  private freshOutside(prefix: Prefix, extra: Prefix[]): Pair {
    try {
      return this.fresh(prefix, extra);
    } catch (err) {
      if (!extra.length) throw err;
      try {
        this.fresh(prefix, []);
      } catch {
        throw err; // full even without them
      }
      const pool = formatPrefix(masked(prefix));
      const blocking = extra.filter((x) => overlaps(x, prefix)).map((x) => formatPrefix(x));
      throw new AgentError('ADDRESS_OVERLAP', `address pool ${pool} has no free address pair outside the prefixes the client excludes: ${blocking.join(', ')}`);
    }
  }

  private fresh(prefix: Prefix, extra: Prefix[]): Pair {
    const start = networkOf(prefix);
    const end = start + sizeOf(prefix);
    const found: bigint[] = [];
    for (let v = start; v < end && found.length < 2; v++) {
      if (this.usable(prefix, prefix.family, v, extra)) found.push(v);
    }
    const [dst, src] = found;
    if (dst === undefined || src === undefined) {
      throw new AgentError('POOL_EXHAUSTED', `address pool ${hostPrefix(prefix.family, prefix.addr).split('/')[0]}/${prefix.bits} is exhausted`);
    }
    return { family: prefix.family, dst, src };
  }
}
