/**
 * The prefix pool of a vl3-ipam server, as upstream NSM sdk's vl3ipam server keeps it: one
 * network (e.g. 172.16.0.0/16) handed out to vL3 endpoints as prefixes of the client length
 * (e.g. /24). Memory only: after a restart every prefix is free, and endpoints reconnecting
 * ask for theirs back.
 *
 * Prefixes are compared and returned canonical (host bits cleared, IPv6 compressed); text that
 * carries host bits (172.16.1.0/16) is accepted and masked.
 */
import { AgentError } from '../../core/errors';
import { firstFreeSubnet, formatPrefix, overlaps, parseNetwork, width, within, type Prefix } from '../../networkservice/ipam/cidr';

/**
 * Why a pool of `prefix` split into /`clientPrefixLength` cannot be made, or undefined when
 * it can. Shared by the config check and the pool itself.
 */
export function poolSettingsProblem(prefix: string, clientPrefixLength: number): { key: 'prefix' | 'clientPrefixLength'; reason: string } | undefined {
  const net = parseNetwork(prefix);
  if (!net) return { key: 'prefix', reason: `${prefix} is not a CIDR prefix (e.g. 172.16.0.0/16 or 2001:db8::/64)` };
  const max = width(net);
  if (!Number.isInteger(clientPrefixLength) || clientPrefixLength <= net.bits || clientPrefixLength > max) {
    return {
      key: 'clientPrefixLength',
      reason: `${clientPrefixLength} does not fit ${formatPrefix(net)}: it must be longer than /${net.bits} and at most /${max}`,
    };
  }
  return undefined;
}

export class PrefixPool {
  /** The whole network, canonical. */
  readonly network: Prefix;
  private readonly used = new Map<string, Prefix>();

  constructor(
    prefix: string,
    readonly clientPrefixLength: number,
  ) {
    const problem = poolSettingsProblem(prefix, clientPrefixLength);
    if (problem) throw new AgentError('INVALID_ARGUMENT', `vl3-ipam ${problem.key}: ${problem.reason}`);
    this.network = parseNetwork(prefix) as Prefix;
  }

  /** The network as text, canonical. */
  get cidr(): string {
    return formatPrefix(this.network);
  }

  /** The prefixes in use, canonical. */
  inUse(): string[] {
    return [...this.used.keys()];
  }

  /**
   * Takes a prefix. `requested` (may be empty) is granted when it lies in the network, is no
   * wider than a client prefix and overlaps neither a prefix in use nor `exclude` (an endpoint
   * getting its previous prefix back); otherwise the first free /clientPrefixLength outside
   * `exclude` is taken. Throws INVALID_ARGUMENT for text that is not a prefix, POOL_EXHAUSTED when
   * nothing is free.
   */
  allocate(requested: string, exclude: readonly string[] = []): string {
    const excluded = exclude.map((text, i) => {
      const p = parseNetwork(text) ?? parseNetwork(`${text.trim()}/${text.includes(':') ? 128 : 32}`);
      if (!p) throw new AgentError('INVALID_ARGUMENT', `PrefixRequest.exclude_prefixes[${i}]: ${JSON.stringify(text)} is not a CIDR prefix`);
      return p;
    });
    let wanted: Prefix | undefined;
    if (requested !== '') {
      wanted = parseNetwork(requested);
      if (!wanted) throw new AgentError('INVALID_ARGUMENT', `PrefixRequest.prefix: ${JSON.stringify(requested)} is not a CIDR prefix`);
    }
    const taken = [...this.used.values(), ...excluded];
    const free = (p: Prefix) => within(this.network, p) && p.bits >= this.clientPrefixLength && !taken.some((t) => overlaps(t, p));
    const grant = wanted && free(wanted) ? wanted : firstFreeSubnet(this.network, this.clientPrefixLength, taken);
    if (!grant) {
      const reason = excluded.length ? ` outside the ${excluded.length} excluded prefixes` : '';
      throw new AgentError(
        'POOL_EXHAUSTED',
        `vl3-ipam prefix pool ${this.cidr} is exhausted: no free /${this.clientPrefixLength}${reason} (${this.used.size} in use)`,
      );
    }
    const text = formatPrefix(grant);
    this.used.set(text, grant);
    return text;
  }

  /** Returns a prefix (any text form of it) to the pool; false if it was not in use. */
  free(prefix: string): boolean {
    const p = parseNetwork(prefix);
    return p ? this.used.delete(formatPrefix(p)) : false;
  }
}
