/**
 * The agent's own policy (agent.yaml `policy`): which SPIFFE IDs may connect to which network
 * services. Entries `{service, allow: [patterns]}`; a pattern is an exact ID,
 * `spiffe://td/*` (any ID of a trust domain), `spiffe://td/path/*` (below a path) or `*`
 * (see idMatcher). `service: '*'` applies to services without an entry of their own.
 *
 * Semantics: a service with entries admits an ID matched by any of its entries' patterns; a
 * service without entries (and no `*` entry) is open to every authenticated identity, as NSM
 * is by default.
 */
import { AgentError } from '../../core/errors';
import { idMatcher } from '../../spire/id';

export interface ServicePolicyEntry {
  service: string;
  allow: string[];
}

export class ServicePolicy {
  private readonly rules = new Map<string, ((id: string) => boolean)[]>();

  /** Throws INVALID_ARGUMENT naming the entry and pattern that do not parse. */
  constructor(entries: readonly ServicePolicyEntry[]) {
    entries.forEach((e, i) => {
      const list = this.rules.get(e.service) ?? [];
      e.allow.forEach((p, j) => {
        try {
          list.push(idMatcher(p));
        } catch (err) {
          throw new AgentError('INVALID_ARGUMENT', `policy[${i}].allow[${j}]: ${(err as Error).message}`);
        }
      });
      this.rules.set(e.service, list);
    });
  }

  /** Whether any entry governs `service`. */
  governs(service: string): boolean {
    return this.rules.has(service) || this.rules.has('*');
  }

  /** True if `id` may connect to `service`. */
  allows(service: string, id: string): boolean {
    const rules = this.rules.get(service) ?? this.rules.get('*');
    if (!rules) return true;
    return rules.some((m) => m(id));
  }
}
