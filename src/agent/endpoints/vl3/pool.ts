/**
 * The address pool of one vL3 endpoint for one address family, as NSM's vl3 IPAM keeps it:
 * the prefix leased from a vl3-ipam server, the endpoint's own address (the prefix's network
 * address, e.g. 172.16.0.0/32), one host address per client from the rest, and the "global"
 * network every member routes through the endpoint (the own address masked to half the address
 * width: /16 for IPv4, /64 for IPv6, as upstream computes it).
 * A new lease (reset) drops every allocation: clients re-request and get addresses of the new
 * prefix. Owners are connection ids; an owner holds at most one address.
 */
import { AgentError } from '../../../core/errors';
import { contains, formatIp, hostPrefix, networkOf, parseIp, parsePrefix, sizeOf, width, type Prefix } from '../../../networkservice/ipam/cidr';

export class Vl3Pool {
  private lease: Prefix | undefined;
  private excluded: Prefix[] = [];
  /** value → owner */
  private readonly owners = new Map<bigint, string>();
  /** owner → value */
  private readonly byOwner = new Map<string, bigint>();
  /** Where the next search for a free address starts (addresses are not reused at once). */
  private cursor = 0n;

  /** The address family, known from the first lease on. */
  family: 4 | 6 | undefined;

  get initialized(): boolean {
    return this.lease !== undefined;
  }

  /** The leased prefix, masked (e.g. 172.16.1.0/24). */
  get prefix(): string | undefined {
    return this.lease && `${formatIp(this.lease.family, networkOf(this.lease))}/${this.lease.bits}`;
  }

  /** The endpoint's own address as a host prefix (172.16.1.0/32). */
  get self(): string | undefined {
    return this.lease && hostPrefix(this.lease.family, networkOf(this.lease));
  }

  /** The endpoint's own address without a length. */
  get selfIp(): string | undefined {
    return this.lease && formatIp(this.lease.family, networkOf(this.lease));
  }

  /** The whole vL3 network as upstream advertises it: the own address with host bits, /16 or /64. */
  get global(): string | undefined {
    return this.lease && `${this.selfIp}/${width(this.lease) / 2}`;
  }

  get size(): number {
    return this.byOwner.size;
  }

  /**
   * Takes a new lease: the prefix (host bits are masked) minus `excluded`. Every allocation
   * is dropped. Returns false (and keeps the allocations) when the prefix is the one held.
   */
  reset(prefix: string, excluded: string[] = []): boolean {
    const p = parsePrefix(prefix);
    if (!p || !prefix.includes('/') || (this.family !== undefined && p.family !== this.family)) {
      throw new AgentError('INVALID_ARGUMENT', `vl3-ipam answered with ${JSON.stringify(prefix)}, not an IPv${this.family ?? '4 or IPv6'} prefix`);
    }
    this.family = p.family;
    if (p.bits >= width(p) - 1) throw new AgentError('INVALID_ARGUMENT', `vl3-ipam answered with ${prefix}: too small to hold clients`);
    const masked: Prefix = { family: p.family, addr: networkOf(p), bits: p.bits };
    const same = this.lease && this.lease.addr === masked.addr && this.lease.bits === masked.bits;
    this.excluded = excluded.map((x) => parsePrefix(x)).filter((x): x is Prefix => !!x && x.family === p.family);
    if (same) return false;
    this.lease = masked;
    this.owners.clear();
    this.byOwner.clear();
    this.cursor = 0n;
    return true;
  }

  /** True if `addr` (an address or host prefix) is inside the leased prefix. */
  inPrefix(addr: string): boolean {
    const ip = parseIp(addr.split('/')[0] ?? '');
    return !!ip && !!this.lease && contains(this.lease, ip.family, ip.value);
  }

  /** True if `addr` is the endpoint's own address. */
  isSelf(addr: string): boolean {
    return this.lease !== undefined && addr.split('/')[0] === this.selfIp;
  }

  /** The address `owner` holds, as a host prefix. */
  addressOf(owner: string): string | undefined {
    const v = this.byOwner.get(owner);
    return v === undefined || !this.lease ? undefined : hostPrefix(this.lease.family, v);
  }

  /**
   * Gives `owner` the address `wanted` if it is inside the prefix and free (or already its
   * own); else the address it holds; else a new one. Returns the host prefix.
   */
  allocate(owner: string, wanted?: string): string {
    if (!this.lease) throw new AgentError('UNAVAILABLE', 'vL3 prefix pool is initializing');
    const family = this.lease.family;
    const ip = wanted ? parseIp(wanted.split('/')[0] ?? '') : undefined;
    if (ip && ip.family === family && this.usable(ip.value, owner)) {
      this.take(owner, ip.value);
      return hostPrefix(family, ip.value);
    }
    const held = this.byOwner.get(owner);
    if (held !== undefined) return hostPrefix(family, held);
    const start = networkOf(this.lease);
    const size = sizeOf(this.lease);
    for (let i = 0n; i < size; i++) {
      const v = start + ((this.cursor + i) % size);
      if (this.usable(v, owner)) {
        this.cursor = v - start + 1n;
        this.take(owner, v);
        return hostPrefix(family, v);
      }
    }
    throw new AgentError('POOL_EXHAUSTED', `vL3 prefix ${this.prefix} has no free address`);
  }

  /** Frees what `owner` holds. */
  release(owner: string): void {
    const v = this.byOwner.get(owner);
    if (v === undefined) return;
    this.byOwner.delete(owner);
    this.owners.delete(v);
  }

  private usable(v: bigint, owner: string): boolean {
    const lease = this.lease!;
    if (!contains(lease, lease.family, v)) return false;
    if (v === networkOf(lease)) return false; // the endpoint's own
    if (lease.family === 4 && v === networkOf(lease) + sizeOf(lease) - 1n) return false; // broadcast
    const who = this.owners.get(v);
    if (who !== undefined && who !== owner) return false;
    return !this.excluded.some((x) => contains(x, lease.family, v));
  }

  private take(owner: string, v: bigint): void {
    this.release(owner);
    this.owners.set(v, owner);
    this.byOwner.set(owner, v);
  }
}
