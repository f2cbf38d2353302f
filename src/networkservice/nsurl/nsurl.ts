/**
 * The client URL syntax of NSM (sdk tools/nsurl, cmd-nsc NSM_NETWORK_SERVICES):
 *
 *   [<mechanism>://]<ns>[@<domain>][/<ifname>][?k1=v1&k2=v2]
 *
 * - The scheme, upper-cased, is the mechanism type (cls LOCAL); without one, KERNEL.
 * - `<ns>@<domain>` is the network service name as written (interdomain).
 * - The last path element is the interface name (the mechanism's `name` parameter).
 * - Query parameters become the request labels; a repeated key's values are joined with ",".
 * Examples: kernel://kernel2ip2kernel/nsm-1, kernel://svc@my.cluster2/nsm-1, icmp/nsm-1?app=a.
 */
import type { Mechanism } from '../../api';
import { AgentError } from '../../core/errors';

export interface NsURL {
  /** The mechanism type: 'KERNEL', 'MEMIF', ... */
  mechanism: string;
  /** Same as `mechanism`. */
  mechanismType: string;
  /** The network service, with `@domain` if the URL had one. */
  networkService: string;
  /** The interface name (path), if the URL has one. */
  interfaceName: string | undefined;
  labels: Record<string, string>;
}

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;
// DNS-style names as NSM services and domains use them (also upper case and underscores, which
// Kubernetes forbids but other registries accept).
const NAME = /^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/;
const DOMAIN = /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]+)?$/;
const MAX_IFNAME = 15;

function bad(url: string, why: string): AgentError {
  return new AgentError('INVALID_ARGUMENT', `invalid network service URL ${JSON.stringify(url)}: ${why}`);
}

/** Checks a Linux interface name: 1-15 bytes, no '/', ':' or whitespace, not "." or "..". */
export function checkInterfaceName(name: string): void {
  if (name === '') throw new AgentError('INVALID_INTERFACE_NAME', 'interface name must not be empty');
  if (Buffer.byteLength(name) > MAX_IFNAME) {
    throw new AgentError('INVALID_INTERFACE_NAME', `interface name ${JSON.stringify(name)} is longer than ${MAX_IFNAME} bytes`);
  }
  if (name === '.' || name === '..' || /[\s/:%]/.test(name) || /[\x00-\x1f\x7f]/.test(name)) {
    throw new AgentError('INVALID_INTERFACE_NAME', `interface name ${JSON.stringify(name)} has characters Linux does not allow`);
  }
}

export function parseNsURL(url: string): NsURL {
  if (typeof url !== 'string' || url.trim() === '') throw bad(String(url), 'empty');
  if (url !== url.trim() || /\s/.test(url)) throw bad(url, 'must not contain whitespace');
  if (url.includes('#')) throw bad(url, 'must not have a fragment');

  let rest = url;
  let mechanism = 'KERNEL';
  const scheme = SCHEME.exec(rest);
  if (scheme) {
    mechanism = scheme[1]!.toUpperCase();
    rest = rest.slice(scheme[0].length);
  } else if (/^[^/?]*:\/\//.test(rest) || rest.startsWith('//')) {
    throw bad(url, 'malformed scheme');
  }

  let query = '';
  const q = rest.indexOf('?');
  if (q >= 0) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }

  const slash = rest.indexOf('/');
  const authority = slash >= 0 ? rest.slice(0, slash) : rest;
  const path = slash >= 0 ? rest.slice(slash) : '';

  if (authority === '') throw bad(url, 'the network service name is missing');
  const at = authority.lastIndexOf('@');
  const service = at >= 0 ? authority.slice(0, at) : authority;
  const domain = at >= 0 ? authority.slice(at + 1) : undefined;
  if (!NAME.test(service)) throw bad(url, `bad network service name ${JSON.stringify(service)}`);
  if (domain !== undefined && !DOMAIN.test(domain)) throw bad(url, `bad domain ${JSON.stringify(domain)}`);

  let interfaceName: string | undefined;
  if (path !== '') {
    const parts = path.split('/');
    interfaceName = parts[parts.length - 1]!;
    checkInterfaceName(interfaceName);
  }

  const labels: Record<string, string> = {};
  if (query !== '') {
    if (query.includes(';')) throw bad(url, 'query must not contain ";"');
    let params: URLSearchParams;
    try {
      // Decoding errors surface here (URLSearchParams itself is lenient, decodeURIComponent is not).
      for (const part of query.split('&')) if (part) decodeURIComponent(part.replace(/\+/g, ' '));
      params = new URLSearchParams(query);
    } catch {
      throw bad(url, 'malformed query');
    }
    const multi = new Map<string, string[]>();
    for (const [k, v] of params) {
      if (k === '') throw bad(url, 'a label has an empty name');
      multi.set(k, [...(multi.get(k) ?? []), v]);
    }
    for (const [k, vs] of multi) labels[k] = vs.join(',');
  }

  return {
    mechanism,
    mechanismType: mechanism,
    networkService: domain !== undefined ? `${service}@${domain}` : service,
    interfaceName,
    labels,
  };
}

/** The mechanism preference the URL describes: cls LOCAL, its type, `name` = the interface. */
export function mechanismOf(u: NsURL): Mechanism {
  return {
    cls: 'LOCAL',
    type: u.mechanism,
    parameters: u.interfaceName !== undefined ? { name: u.interfaceName } : {},
  };
}
