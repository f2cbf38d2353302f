/**
 * Endpoint matching for a network service, as NSM's discover does it (sdk matchutils and
 * discover's matchEndpoint).
 *
 * - A service without matches: every endpoint.
 * - Otherwise the first match whose source_selector is a subset of the request labels decides:
 *   candidates are the endpoints whose labels for this service are a superset of the
 *   destination_selector of any of its routes.
 *   - fallthrough and no candidates: go on with the next match;
 *   - metadata set, no routes and no candidates: every endpoint;
 *   - otherwise those candidates, even none.
 * - No match applies: no endpoint.
 * Selector values are templates over the request labels (template.ts).
 */
import type { NetworkService, NetworkServiceEndpoint } from '../../api';
import { processLabels } from './template';

type Labels = Record<string, string>;

/**
 * True if `b` is a subset of `a`: a has at least as many entries, and for each key of b, a's
 * value (empty if absent, as in Go) equals b's value, literally or after templating with `values`.
 */
export function isSubset(a: Labels | undefined, b: Labels | undefined, values: Labels | undefined): boolean {
  const have = a ?? {};
  const want = Object.entries(b ?? {});
  if (Object.keys(have).length < want.length) return false;
  for (const [k, v] of want) {
    const actual = Object.prototype.hasOwnProperty.call(have, k) ? have[k] : '';
    if (actual !== v && actual !== processLabels(v, values)) return false;
  }
  return true;
}

export function matchEndpoint(
  labels: Labels | undefined,
  ns: NetworkService,
  nses: NetworkServiceEndpoint[],
): NetworkServiceEndpoint[] {
  const matches = ns.matches ?? [];
  if (matches.length === 0) return nses;
  const service = ns.name ?? '';
  for (const match of matches) {
    if (!isSubset(labels, match.source_selector, labels)) continue;
    const routes = match.routes ?? [];
    const candidates = nses.filter((nse) =>
      routes.some((r) => isSubset(nse.network_service_labels?.[service]?.labels, r.destination_selector, labels)),
    );
    if (match.fallthrough && candidates.length === 0) continue;
    if (match.metadata != null && routes.length === 0 && candidates.length === 0) return nses;
    return candidates;
  }
  return [];
}
