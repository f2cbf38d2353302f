/**
 * Registry query matching, as upstream NSM sdk `matchutils` does it. A query field
 * takes part only when it is set; "set" means what a Go server sees after decoding: a non-empty
 * string, a non-empty repeated field or map, a present message.
 *
 * - NS: `name` equal; `payload` equal; `matches` deep-equal (proto equality).
 * - NSE: `name` equal; every `network_service_labels[svc]` key/value present in the entry
 *   (the service key itself must exist); `expiration_time.seconds` equal; every
 *   `network_service_names` item present; `url` a substring of the entry's url.
 */
import type { Match, NetworkService, NetworkServiceEndpoint } from '../api';

type Labels = { [svc: string]: { labels?: { [k: string]: string } } };

export function matchNs(query: NetworkService | null | undefined, ns: NetworkService): boolean {
  if (!query) return true;
  if (query.name && query.name !== ns.name) return false;
  if (query.payload && query.payload !== ns.payload) return false;
  if (query.matches && query.matches.length > 0 && !matchesEqual(query.matches, ns.matches ?? [])) return false;
  return true;
}

export function matchNse(query: NetworkServiceEndpoint | null | undefined, nse: NetworkServiceEndpoint): boolean {
  if (!query) return true;
  if (query.name && query.name !== nse.name) return false;
  const ql = query.network_service_labels;
  if (ql && Object.keys(ql).length > 0 && !labelsContain(nse.network_service_labels ?? {}, ql)) return false;
  if (query.expiration_time && String(query.expiration_time.seconds ?? 0) !== String(nse.expiration_time?.seconds ?? 0)) {
    return false;
  }
  const qn = query.network_service_names;
  if (qn && qn.length > 0) {
    const have = new Set(nse.network_service_names ?? []);
    if (!qn.every((n) => have.has(n))) return false;
  }
  if (query.url && !(nse.url ?? '').includes(query.url)) return false;
  return true;
}

function labelsContain(where: Labels, what: Labels): boolean {
  for (const [svc, want] of Object.entries(what)) {
    const have = where[svc];
    if (!have) return false;
    for (const [k, v] of Object.entries(want?.labels ?? {})) {
      if (have.labels?.[k] !== v) return false;
    }
  }
  return true;
}

/** proto.Equal over repeated Match: order matters, unset scalars equal their defaults. */
function matchesEqual(a: Match[], b: Match[]): boolean {
  return a.length === b.length && a.every((m, i) => canonical(m) === canonical(b[i]));
}

function canonical(m: Match | undefined): string {
  if (!m) return 'null';
  return JSON.stringify([
    sortedMap(m.source_selector),
    (m.routes ?? []).map((r) => [sortedMap(r.destination_selector), Number(r.weight ?? 0)]),
    Boolean(m.fallthrough),
    m.metadata ? sortedMap(m.metadata.labels) : null,
  ]);
}

function sortedMap(m: { [k: string]: string } | undefined | null): [string, string][] {
  return Object.entries(m ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}
