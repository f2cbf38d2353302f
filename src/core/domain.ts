/**
 * Interdomain names (upstream NSM's `name@domain`): a network service or endpoint name whose
 * text after its last `@` is the domain whose registry serves it. Upstream's registry-proxy-dns
 * and interdomainbypass strip the suffix towards the domain that owns the name and restore it
 * on the way back; these helpers are the one place that knows the form.
 */

export interface DomainName {
  /** The name without its domain. */
  local: string;
  /** The domain, if the name has one. */
  domain: string | undefined;
}

export function splitDomain(name: string): DomainName {
  const at = name.lastIndexOf('@');
  if (at < 0) return { local: name, domain: undefined };
  return { local: name.slice(0, at), domain: name.slice(at + 1) };
}

export function withDomain(local: string, domain: string | undefined): string {
  return domain === undefined ? local : `${local}@${domain}`;
}

/** The domain of `name`, or undefined if it has none. */
export function domainOf(name: string | undefined): string | undefined {
  return name ? splitDomain(name).domain : undefined;
}

/** `name` without `@domain` when it ends with exactly that domain; otherwise `name` as it is. */
export function stripDomain(name: string, domain: string): string {
  const s = splitDomain(name);
  return s.domain === domain ? s.local : name;
}

/** Domains compare without case, as DNS names do. */
export function sameDomain(a: string | undefined, b: string | undefined): boolean {
  return a !== undefined && b !== undefined && a.toLowerCase() === b.toLowerCase();
}

/** True when `domain` is set and is not `own` (a name of another domain). */
export function isOtherDomain(domain: string | undefined, own: string | undefined): domain is string {
  return domain !== undefined && !sameDomain(domain, own);
}
