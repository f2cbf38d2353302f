/**
 * The checks of agent.yaml's endpoint entries that differ by kind (vL3, passthrough) and the
 * parts every kind shares (`dns`, `netns`). Errors name the file and the entry's key.
 */
import path from 'node:path';
import { ConfigError } from './error';
import { dnsSettingsProblem, type DnsSettings } from './dns';
import { routerNetnsName } from '../endpoints/vl3/names';
import type { EndpointConfig } from './index';

export function parseDns(file: string, key: string, list: { servers: string[]; searchDomains?: string[] }[] | undefined): { dns?: DnsSettings[] } {
  if (list === undefined) return {};
  return {
    dns: list.map((d, j) => {
      const problem = dnsSettingsProblem(d);
      if (problem) throw new ConfigError(file, `${key}.dns[${j}].${problem.key}`, problem.reason);
      return { servers: d.servers, searchDomains: d.searchDomains ?? [] };
    }),
  };
}

/** A vL3 endpoint entry: `vl3.ipam` instead of `cidr`; its router namespace by default. */
export function vl3Endpoint(file: string, key: string, e: any): EndpointConfig {
  if (e.cidr !== undefined) throw new ConfigError(file, `${key}.cidr`, 'a vL3 endpoint leases its addresses from vl3.ipam: remove cidr');
  if (e.services.length !== 1) throw new ConfigError(file, `${key}.services`, 'a vL3 endpoint serves exactly one network service');
  if (e.payload === 'ETHERNET') throw new ConfigError(file, `${key}.payload`, 'a vL3 network is IP: payload must be IP');
  const ipam: string[] = e.vl3.ipam;
  ipam.forEach((url, j) => {
    if (!/^(tcp:\/\/[^/\s]+:\d{1,5}|unix:\/\/\/\S+)$/.test(url)) {
      throw new ConfigError(file, `${key}.vl3.ipam[${j}]`, `${JSON.stringify(url)} is not a vl3-ipam URL (tcp://host:port or unix:///path)`);
    }
  });
  if (new Set(ipam).size !== ipam.length) throw new ConfigError(file, `${key}.vl3.ipam`, 'names the same server twice');
  const ownNetns = e.netns === undefined;
  return {
    name: e.name,
    services: e.services,
    labels: e.labels ?? {},
    cidr: '',
    netns: ownNetns ? routerNetnsName(e.name) : e.netns,
    payload: 'IP',
    interface: e.interface,
    excludedPrefixes: [],
    kind: 'vl3',
    vl3: { ipam, ownNetns },
  };
}

/** An endpoint's `netns`: host, a name under /run/netns or an absolute path (or absent). */
export function checkNetns(file: string, key: string, netns: string | undefined): void {
  if (netns !== undefined && netns !== 'host' && !path.isAbsolute(netns) && !/^[^/\0]+$/.test(netns)) {
    throw new ConfigError(file, `${key}.netns`, `${JSON.stringify(netns)} must be host, a name under /run/netns or an absolute path`);
  }
  if (netns === '.' || netns === '..') throw new ConfigError(file, `${key}.netns`, `${netns} is not a namespace name`);
}

/** A passthrough endpoint (`passthrough: true`): no pool, the other keys as for any endpoint. */
export function passthroughEndpoint(file: string, key: string, e: any, dns: { dns?: DnsSettings[] }): EndpointConfig {
  if (e.cidr !== undefined) throw new ConfigError(file, `${key}.cidr`, 'a passthrough endpoint assigns no addresses (the last endpoint of the chain does): remove cidr');
  if (e.excludedPrefixes !== undefined) throw new ConfigError(file, `${key}.excludedPrefixes`, 'a passthrough endpoint assigns no addresses: remove excludedPrefixes');
  if (e.interface !== undefined) throw new ConfigError(file, `${key}.interface`, 'a passthrough endpoint has two interfaces per connection, named for it: remove interface');
  if (dns.dns) throw new ConfigError(file, `${key}.dns`, 'a passthrough endpoint hands out the DNS configs of the chain\'s last endpoint: remove dns');
  checkNetns(file, key, e.netns);
  return {
    name: e.name,
    services: e.services,
    labels: e.labels ?? {},
    cidr: '',
    netns: e.netns ?? 'host',
    payload: e.payload ?? 'IP',
    excludedPrefixes: [],
    kind: 'passthrough',
  };
}
