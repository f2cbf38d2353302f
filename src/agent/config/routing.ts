/**
 * An endpoint's `routes` and `policies` (agent.yaml), checked and in their wire form (the IP
 * context's Route and PolicyRoute): every problem names the key (under the entry's) and what
 * is wrong; index.ts makes it a ConfigError.
 */
import type { PolicyRoute, Route } from '../../api';
import { policySpec } from '../../mechanisms/kernel/policies';
import { parseIp, parseNetwork } from '../../networkservice/ipam/cidr';

/** What is wrong, and where under the entry's key. */
export class RoutingProblem extends Error {
  constructor(
    readonly key: string,
    readonly reason: string,
  ) {
    super(`${key}: ${reason}`);
  }
}

interface RawRoute {
  prefix: string;
  nextHop?: string;
}

interface RawPolicy {
  from?: string;
  proto?: string | number;
  dstPort?: string | number;
  srcPort?: string | number;
  routes?: RawRoute[];
}

function route(key: string, r: RawRoute): Route {
  if (!parseNetwork(r.prefix)) throw new RoutingProblem(`${key}.prefix`, `${r.prefix} is not a CIDR prefix`);
  if (r.nextHop !== undefined && !parseIp(r.nextHop)) throw new RoutingProblem(`${key}.nextHop`, `${r.nextHop} is not an IP address`);
  return { prefix: r.prefix, ...(r.nextHop !== undefined ? { nextHop: r.nextHop } : {}) };
}

/** `{ routes, policies }` as given (each only when the entry has it); throws RoutingProblem. */
export function parseRouting(key: string, e: { routes?: RawRoute[]; policies?: RawPolicy[] }): { routes?: Route[]; policies?: PolicyRoute[] } {
  const out: { routes?: Route[]; policies?: PolicyRoute[] } = {};
  if (e.routes) out.routes = e.routes.map((r, i) => route(`${key}.routes[${i}]`, r));
  if (e.policies) {
    const keys = new Set<string>();
    out.policies = e.policies.map((p, i) => {
      const at = `${key}.policies[${i}]`;
      const policy: PolicyRoute = {
        ...(p.from !== undefined ? { from: p.from } : {}),
        ...(p.proto !== undefined ? { proto: String(p.proto) } : {}),
        ...(p.dstPort !== undefined ? { dst_port: String(p.dstPort) } : {}),
        ...(p.srcPort !== undefined ? { src_port: String(p.srcPort) } : {}),
        routes: (p.routes ?? []).map((r, j) => route(`${at}.routes[${j}]`, r)),
      };
      try {
        policySpec(policy);
      } catch (err) {
        throw new RoutingProblem(at, (err as Error).message.replace(/^policy route [^:]*: /, ''));
      }
      const k = `${policy.dst_port ?? ''};${policy.src_port ?? ''};${policy.from ?? ''};${policy.proto ?? ''}`;
      if (keys.has(k)) throw new RoutingProblem(at, 'matches the same traffic (from, proto, srcPort, dstPort) as an earlier policy');
      keys.add(k);
      return policy;
    });
  }
  return out;
}
