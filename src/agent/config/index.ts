// Over 400 lines: parseConfig checks every key of agent.yaml next to the message that names it
// (endpoint kinds and identity have their own modules: ./endpoint-kinds.ts, ./identity.ts).
/**
 * agent.yaml: read, validated against AGENT_SCHEMA and a few semantic rules, and filled with
 * defaults. Every error names the file, the key (dotted path) and what is wrong; the caller
 * exits non-zero before touching the host.
 */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { isIP } from 'node:net';
import path from 'node:path';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { lazyModule } from '../../core/lazy';
import { AGENT_SCHEMA } from './schema';
import { yamlErrorText, yamlValueError } from './yaml-error';
import { parseDuration } from './duration';
import { ConfigError } from './error';
import { DEFAULT_SOCKET } from '../socket-path';
import { parsePrefix } from '../../networkservice/ipam/cidr';
import { AddressPool } from '../../networkservice/ipam/pool';
import { parseNsURL } from '../../networkservice/nsurl';
import { validateId, validateLabels } from '../../core/validate';
import { domainOf, isOtherDomain, sameDomain } from '../../core/domain';
import { idMatcher } from '../../spire/id';
import type { FederationSettings } from '../../spire/federation';
import { poolSettingsProblem } from '../../vl3/ipam/pool';
import type { DnsSettings } from './dns';
import { checkNetns, parseDns, passthroughEndpoint, vl3Endpoint } from './endpoint-kinds';
import { parseIdentity } from './identity';
import { parseRouting, RoutingProblem } from './routing';
import type { PolicyRoute, Route } from '../../api';

// Loaded on first use: commands that only talk to a running agent import this module for its
// defaults and ConfigError, and need no YAML parser.
const YAML = lazyModule(() => require('yaml') as typeof import('yaml'));

export interface EndpointConfig {
  name: string;
  services: string[];
  labels: Record<string, string>;
  cidr: string;
  /** A namespace name, a path, or 'host'. */
  netns: string;
  payload: 'IP' | 'ETHERNET';
  /** Endpoint-side interface name; generated per connection when absent. */
  interface?: string;
  excludedPrefixes: string[];
  /** Routes handed to each client (`src_routes`); absent: none beside the endpoint's address. */
  routes?: Route[];
  /** Policy routes handed to each client (`policies`, upstream PolicyRoute); absent: none. */
  policies?: PolicyRoute[];
  /** The kind of endpoint (src/agent/endpoints/kinds.ts); absent: p2p. Set from the entry's keys (`vl3:` makes a vL3 endpoint, `passthrough: true` a passthrough one). */
  kind?: string;
  /** A vL3 endpoint's settings (kind 'vl3'). */
  vl3?: Vl3Config;
  /** DNS configs handed to every client (`dns_context.configs`); absent: none. */
  dns?: DnsSettings[];
}

export interface Vl3Config {
  /** vl3-ipam server URLs (tcp://host:port or unix:///path), one per address family. */
  ipam: string[];
  /** True when the agent makes the router's namespace itself (no `netns` given). */
  ownNetns: boolean;
}

export interface ConnectionConfig {
  url: string;
  netns: string;
  id?: string;
}

/** Where the agent's SPIFFE identity comes from (src/spire: createX509Source). */
export interface IdentityConfig {
  source: 'spiffe' | 'files' | 'dev';
  /** The Workload API address; default $SPIFFE_ENDPOINT_SOCKET. */
  socket?: string;
  /** Required with source files. */
  files?: { cert: string; key: string; bundle: string; federated: Record<string, string> };
  /** Always filled (defaults: caDir <stateDir>/dev-ca, trustDomain nsm.local). */
  dev: { caDir: string; trustDomain: string; allowNonLoopback: boolean };
  /** Other trust domains' SPIFFE bundle endpoints (src/spire/federation.ts); absent when none. */
  federation?: FederationSettings[];
  /** Serve the own trust domain's bundle (src/spire/bundle-endpoint.ts). */
  bundleEndpoint?: { listen: string; refreshHintS: number };
}

/** This agent serves vl3-ipam: leases of /clientPrefixLength prefixes of `prefix` to vL3 endpoints. */
export interface Vl3IpamConfig {
  /** `host:port` (mutual TLS) or `unix:///path` (plain). */
  listen: string;
  prefix: string;
  clientPrefixLength: number;
}

export interface AgentConfig {
  /** Where it was read from ('<defaults>' when no file was given). */
  file: string;
  name: string;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  stateDir: string;
  /** allowUids: besides root and the agent's own user, who may use the local socket. */
  listen: { unix: string; tcp?: string; allowUids: number[] };
  tunnelIP: string;
  /** Behind NAT: the address advertised for this host's tunnels and URL instead of its own (upstream swapip). */
  publicIP?: string;
  /** This site's domain (`name@<domain>` is served here), if it names one. */
  domain?: string;
  /** Other domains' registries: DNS servers to ask (empty: the system's) and the lookup + find timeout. */
  /** relay: this agent relays other domains' Requests to its domain's endpoints (nsmgr-proxy). */
  interdomain: { dnsServers: string[]; timeoutMs: number; relay?: true };
  /** Local UDP ports for WireGuard ends (inclusive) and which implementation to use. */
  /** spares: devices kept started ahead of need once WireGuard is in use. */
  wireguard: { portMin: number; portMax: number; implementation: 'auto' | 'kernel' | 'wireguard-go'; spares: number };
  maxTokenLifetimeMs: number;
  /** Heal of held connections: liveness check interval (0: no check) and per-check timeout. */
  heal: { livenessIntervalMs: number; livenessTimeoutMs: number; maxChecksPerSecond: number };
  identity: IdentityConfig;
  /** listen: where an embedded registry serves other hosts; undefined = local only unless listen.tcp is set. */
  registry: { url: string; listen?: string; store: 'memory' | 'etcd'; etcd: string[]; expirationMs: number };
  policy: { service: string; allow: string[] }[];
  /** OTLP/gRPC traces to this collector (TELEMETRY=true switches them on too); undefined: off. */
  telemetry?: { endpoint: string };
  /** Prometheus `/metrics`; undefined: off. */
  metrics?: { listen: string; tls: boolean; mtls: boolean };
  endpoints: EndpointConfig[];
  connections: ConnectionConfig[];
  vl3ipam?: Vl3IpamConfig;
}

export { ConfigError, DEFAULT_SOCKET };

function defaultName(): string {
  const h = os.hostname().toLowerCase().replace(/[^a-z0-9.-]/g, '-');
  return h.replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '') || 'nsm-agent';
}

/**
 * The options agent.yaml's schema is compiled with, here and by scripts/config-validator.mjs.
 * verbose: each error carries the value it is about, for messages that show it.
 */
export const AJV_OPTIONS = { allErrors: false, strict: true, verbose: true } as const;

let compiled: ValidateFunction | undefined;
/**
 * agent.yaml's schema validator: the code `npm run build` generated from this schema
 * (dist/agent/config/validate.js, ajv standalone), so that a start does not compile it; compiled
 * here when there is none or it was made from another schema.
 */
function validator(): ValidateFunction {
  if (compiled) return compiled;
  try {
    const built = require('./validate.js') as ValidateFunction & { schemaText?: string };
    if (built.schemaText === JSON.stringify(AGENT_SCHEMA)) return (compiled = built);
  } catch (err) {
    if ((err as { code?: string }).code !== 'MODULE_NOT_FOUND') throw err;
  }
  const Ajv = (require('ajv') as typeof import('ajv')).default;
  return (compiled = new Ajv(AJV_OPTIONS).compile(AGENT_SCHEMA));
}

function keyOf(err: ErrorObject): string {
  const parts = err.instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (err.keyword === 'additionalProperties') parts.push(String(err.params['additionalProperty']));
  if (err.keyword === 'required') parts.push(String(err.params['missingProperty']));
  return parts.map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i ? `.${p}` : p)).join('');
}

const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

/** A sentence about what is wrong with the value, with the limit it broke (never ajv's own words). */
function reasonOf(err: ErrorObject): string {
  const p = err.params as Record<string, unknown>;
  const shown = typeof err.data === 'string' ? `${JSON.stringify(err.data.length > 40 ? `${err.data.slice(0, 40)}...` : err.data)} ` : '';
  switch (err.keyword) {
    case 'additionalProperties':
      return 'unknown key';
    case 'required':
      return 'is required';
    case 'enum':
      return `must be one of ${(p['allowedValues'] as unknown[]).join(', ')}`;
    case 'pattern':
      return `${shown}has an invalid format`;
    case 'maxLength':
      return `${shown}is longer than ${plural(Number(p['limit']), 'character')}, the most allowed`;
    case 'minLength':
      return Number(p['limit']) === 1 ? 'must not be empty' : `must be at least ${plural(Number(p['limit']), 'character')} long`;
    case 'type': {
      const t = ({ object: 'map', array: 'list' } as Record<string, string>)[String(p['type'])] ?? String(p['type']);
      return `must be ${/^[aeiou]/.test(t) ? 'an' : 'a'} ${t}`;
    }
    case 'minimum':
      return `must be at least ${String(p['limit'])}`;
    case 'maximum':
      return `must be at most ${String(p['limit'])}`;
    case 'minItems':
      return `must list at least ${plural(Number(p['limit']), 'item')}`;
    case 'maxItems':
      return `must list at most ${plural(Number(p['limit']), 'item')}`;
    default:
      return 'has an invalid value';
  }
}

function portRange(file: string, text: string): { portMin: number; portMax: number } {
  const [a, b] = text.split('-').map(Number);
  const portMin = a ?? 0;
  const portMax = b ?? portMin;
  if (!(portMin >= 1 && portMax <= 65535 && portMin <= portMax)) {
    throw new ConfigError(file, 'wireguard.ports', `${text} is not a port range within 1-65535`);
  }
  return { portMin, portMax };
}

/** Validates a parsed document; throws ConfigError. `file` is used in messages only. */
export function parseConfig(doc: unknown, file = '<defaults>'): AgentConfig {
  const raw = (doc ?? {}) as Record<string, any>;
  const validate = validator();
  if (!validate(raw)) {
    const err = validate.errors?.[0];
    throw new ConfigError(file, err ? keyOf(err) : '', err ? reasonOf(err) : 'invalid');
  }
  const lifetime = parseDuration(raw.maxTokenLifetime ?? '10m');
  if (lifetime === undefined) throw new ConfigError(file, 'maxTokenLifetime', 'must be a positive duration');
  const expiration = parseDuration(raw.registry?.expiration ?? '1m');
  if (expiration === undefined) throw new ConfigError(file, 'registry.expiration', 'must be a positive duration');

  const livenessInterval = raw.heal?.livenessInterval === '0s' ? 0 : parseDuration(raw.heal?.livenessInterval ?? '200ms');
  if (livenessInterval === undefined) throw new ConfigError(file, 'heal.livenessInterval', 'must be a duration');
  const livenessTimeout = parseDuration(raw.heal?.livenessTimeout ?? '100ms');
  if (livenessTimeout === undefined) throw new ConfigError(file, 'heal.livenessTimeout', 'must be a positive duration');

  if (raw.registry?.store === 'etcd' && !(raw.registry?.etcd ?? []).length) {
    throw new ConfigError(file, 'registry.etcd', 'the etcd store needs at least one endpoint');
  }
  const interdomainTimeout = parseDuration(raw.interdomain?.timeout ?? '3s');
  if (interdomainTimeout === undefined) throw new ConfigError(file, 'interdomain.timeout', 'must be a positive duration');
  for (const [i, server] of (raw.interdomain?.dnsServers ?? []).entries()) {
    try {
      new (require('node:dns') as typeof import('node:dns')).promises.Resolver().setServers([server]);
    } catch {
      throw new ConfigError(file, `interdomain.dnsServers[${i}]`, `${server} is not IP, IP:port or [IPv6]:port`);
    }
  }
  if (raw.interdomain?.relay && !raw.domain) throw new ConfigError(file, 'interdomain.relay', 'needs domain: the relay serves the names of its own domain');
  if (raw.interdomain?.relay && !raw.listen?.tcp) throw new ConfigError(file, 'interdomain.relay', 'needs listen.tcp: other domains reach the relay there');
  if (raw.publicIP !== undefined && isIP(raw.publicIP) === 0) throw new ConfigError(file, 'publicIP', `${raw.publicIP} is not an IP address`);
  if (raw.metrics?.mtls && raw.metrics?.tls === false) throw new ConfigError(file, 'metrics.mtls', 'needs metrics.tls (mTLS is TLS with client certificates)');
  const stateDir: string = raw.stateDir ?? '/var/lib/nsm-agent';
  const identity = parseIdentity(file, raw.identity ?? {}, stateDir);
  (raw.policy ?? []).forEach((p: { allow: string[] }, i: number) =>
    p.allow.forEach((pattern, j) => {
      try {
        idMatcher(pattern);
      } catch (err) {
        throw new ConfigError(file, `policy[${i}].allow[${j}]`, `${(err as Error).message} (use an ID, spiffe://td/* or spiffe://td/path/*)`);
      }
    }),
  );
  const names = new Set<string>();
  const endpoints: EndpointConfig[] = (raw.endpoints ?? []).map((e: any, i: number) => {
    const key = `endpoints[${i}]`;
    if (names.has(e.name)) throw new ConfigError(file, `${key}.name`, `duplicate endpoint name ${e.name}`);
    // A name of another domain makes the endpoint floating: registered into that domain's
    // registry, so its services must all carry that domain too.
    const floating = isOtherDomain(domainOf(e.name), raw.domain) ? domainOf(e.name) : undefined;
    (e.services as string[]).forEach((svc, j) => {
      const d = domainOf(svc);
      if (floating !== undefined && !sameDomain(d, floating)) {
        throw new ConfigError(file, `${key}.services[${j}]`, `${svc} is not of domain ${floating}: a floating endpoint (name ${e.name}) registers into that domain's registry, so every service names it`);
      }
      if (floating === undefined && isOtherDomain(d, raw.domain)) {
        throw new ConfigError(file, `${key}.services[${j}]`, `${svc} names domain ${d}, not this agent's (domain: ${raw.domain ?? 'none'}); to register into ${d}'s registry (floating), name the endpoint ${e.name}@${d} too`);
      }
    });
    if (floating !== undefined && e.vl3) throw new ConfigError(file, `${key}.name`, `a vL3 endpoint cannot be floating (${e.name})`);
    names.add(e.name);
    const dns = parseDns(file, key, e.dns);
    let routing: ReturnType<typeof parseRouting>;
    try {
      routing = parseRouting(key, e);
    } catch (err) {
      if (err instanceof RoutingProblem) throw new ConfigError(file, err.key, err.reason);
      throw err;
    }
    if (e.passthrough && e.vl3) throw new ConfigError(file, `${key}.passthrough`, 'a vL3 endpoint cannot be a passthrough: remove one of passthrough and vl3');
    if (e.vl3) {
      if (Object.keys(routing).length) throw new ConfigError(file, `${key}.${e.policies ? 'policies' : 'routes'}`, 'a vL3 endpoint hands out its own routes: remove it');
      return { ...vl3Endpoint(file, key, e), ...dns };
    }
    if (e.passthrough) {
      if (Object.keys(routing).length) throw new ConfigError(file, `${key}.${e.policies ? 'policies' : 'routes'}`, "a passthrough endpoint passes on the next endpoint's routes: remove it");
      return passthroughEndpoint(file, key, e, dns);
    }
    if (e.cidr === undefined) throw new ConfigError(file, `${key}.cidr`, 'is required (the pool of the endpoint\'s addresses), unless the endpoint is a vL3 one (vl3:)');
    const pools = String(e.cidr).split(',').map((s) => s.trim());
    for (const p of pools) {
      if (!parsePrefix(p) || !p.includes('/')) throw new ConfigError(file, `${key}.cidr`, `${p} is not a CIDR prefix`);
    }
    for (const [j, p] of (e.excludedPrefixes ?? []).entries()) {
      if (!parsePrefix(p)) throw new ConfigError(file, `${key}.excludedPrefixes[${j}]`, `${p} is not a CIDR prefix`);
    }
    for (const p of pools) {
      // Each connection takes two addresses of every pool (endpoint and client side).
      try {
        new AddressPool([p], (e.excludedPrefixes ?? []).map((x: string) => parsePrefix(x)!)).allocate('check', { src: [], dst: [] });
      } catch {
        throw new ConfigError(file, `${key}.cidr`, `${p} can never hold a connection: each needs two free addresses (a /31 or larger IPv4 prefix, a /127 or larger IPv6 one, not all excluded)`);
      }
    }
    checkNetns(file, key, e.netns);
    return {
      name: e.name,
      services: e.services,
      labels: e.labels ?? {},
      cidr: e.cidr,
      netns: e.netns ?? 'host',
      payload: e.payload ?? 'IP',
      interface: e.interface,
      excludedPrefixes: e.excludedPrefixes ?? [],
      ...routing,
      ...dns,
    };
  });

  return {
    file,
    name: raw.name ?? defaultName(),
    logLevel: raw.logLevel ?? 'info',
    stateDir,
    listen: { unix: raw.listen?.unix ?? DEFAULT_SOCKET, tcp: raw.listen?.tcp, allowUids: raw.listen?.allowUids ?? [] },
    tunnelIP: raw.tunnelIP ?? 'auto',
    ...(raw.publicIP ? { publicIP: raw.publicIP } : {}),
    ...(raw.domain ? { domain: raw.domain } : {}),
    interdomain: { dnsServers: raw.interdomain?.dnsServers ?? [], timeoutMs: interdomainTimeout, ...(raw.interdomain?.relay ? { relay: true as const } : {}) },
    wireguard: { ...portRange(file, raw.wireguard?.ports ?? '51820-52819'), implementation: raw.wireguard?.implementation ?? 'auto', spares: raw.wireguard?.spares ?? 2 },
    maxTokenLifetimeMs: lifetime,
    heal: { livenessIntervalMs: livenessInterval, livenessTimeoutMs: livenessTimeout, maxChecksPerSecond: raw.heal?.maxChecksPerSecond ?? 200 },
    identity,
    registry: {
      url: raw.registry?.url ?? 'embedded',
      listen: raw.registry?.listen,
      store: raw.registry?.store ?? 'memory',
      etcd: raw.registry?.etcd ?? [],
      expirationMs: expiration,
    },
    policy: raw.policy ?? [],
    ...(raw.telemetry ? { telemetry: { endpoint: raw.telemetry.endpoint } } : {}),
    ...(raw.metrics ? { metrics: { listen: raw.metrics.listen, tls: raw.metrics.tls ?? !!raw.metrics.mtls, mtls: raw.metrics.mtls ?? false } } : {}),
    endpoints,
    connections: (raw.connections ?? []).map((c: any, i: number) => checkConnection(file, i, { url: c.url, netns: c.netns ?? 'host', id: c.id })),
    ...(raw.vl3ipam ? { vl3ipam: parseVl3Ipam(file, raw.vl3ipam) } : {}),
  };
}

/** An endpoint's `dns` list, checked: `{ dns }` when given, else nothing to add. */
/** Upstream cmd-ipam-vl3's default client prefix length. */
const VL3IPAM_CLIENT_PREFIX_LENGTH = 24;

function parseVl3Ipam(file: string, v: { listen: string; prefix: string; clientPrefixLength?: number }): Vl3IpamConfig {
  const listen = v.listen.trim();
  if (listen.startsWith('unix:')) {
    if (!/^unix:\/\/\/\S+$/.test(listen)) throw new ConfigError(file, 'vl3ipam.listen', `${listen} is not unix:///absolute/path`);
  } else {
    const m = /^(\[[0-9a-fA-F:.]+\]|[^\s:\[\]/]*):(\d{1,5})$/.exec(listen);
    if (!m || Number(m[2]) > 65535) throw new ConfigError(file, 'vl3ipam.listen', `${listen} is not host:port, [v6]:port or unix:///path`);
  }
  const clientPrefixLength = v.clientPrefixLength ?? VL3IPAM_CLIENT_PREFIX_LENGTH;
  const problem = poolSettingsProblem(v.prefix, clientPrefixLength);
  if (problem) throw new ConfigError(file, `vl3ipam.${problem.key}`, problem.reason);
  return { listen, prefix: v.prefix, clientPrefixLength };
}

/** A configured connection as `connect` would check it: URL, namespace name and id. */
function checkConnection(file: string, i: number, c: ConnectionConfig): ConnectionConfig {
  const key = `connections[${i}]`;
  try {
    const u = parseNsURL(c.url);
    if (u.mechanism !== 'KERNEL') throw new Error(`mechanism ${u.mechanism} is not supported for local clients`);
    validateLabels(u.labels);
  } catch (err) {
    throw new ConfigError(file, `${key}.url`, (err as Error).message);
  }
  if (c.netns !== 'host' && !path.isAbsolute(c.netns) && (!/^[^/\0]+$/.test(c.netns) || c.netns === '.' || c.netns === '..')) {
    throw new ConfigError(file, `${key}.netns`, `${JSON.stringify(c.netns)} must be host, a name under /run/netns or an absolute path`);
  }
  if (c.id !== undefined) {
    try {
      validateId(c.id);
    } catch (err) {
      throw new ConfigError(file, `${key}.id`, (err as Error).message);
    }
  }
  return c;
}

/** The namespace file of an endpoint's `netns` (host: none to check). */
export function endpointNetnsFile(netns: string): string | undefined {
  if (netns === 'host') return undefined;
  return path.isAbsolute(netns) ? netns : `/run/netns/${netns}`;
}

/**
 * Checks what the file names on this host: every endpoint's network namespace must exist
 * (the agent does not make them, except a vL3 endpoint's own router namespace; a missing one
 * would fail each client's request later). Throws ConfigError naming the key.
 */
export function checkOnHost(cfg: AgentConfig, exists: (file: string) => boolean = existsSync): AgentConfig {
  cfg.endpoints.forEach((e, i) => {
    if (e.vl3?.ownNetns) return;
    const f = endpointNetnsFile(e.netns);
    if (f && !exists(f)) {
      throw new ConfigError(cfg.file, `endpoints[${i}].netns`, `network namespace ${f} of endpoint ${e.name} does not exist (create it first, e.g. ip netns add ${e.netns})`);
    }
  });
  return cfg;
}

/** The configuration file `nsm-agent run` reads when neither --config nor $NSM_AGENT_CONFIG names one. */
export const DEFAULT_CONFIG_FILE = '/etc/nsm-agent/agent.yaml';

/**
 * Which file `run` reads: --config, then $NSM_AGENT_CONFIG, then DEFAULT_CONFIG_FILE if it
 * exists; undefined (built-in defaults) otherwise. `exists` is injectable for tests.
 */
export function resolveConfigFile(
  flag: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  exists: (file: string) => boolean = existsSync,
): string | undefined {
  if (flag) return flag;
  if (env['NSM_AGENT_CONFIG']) return env['NSM_AGENT_CONFIG'];
  return exists(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined;
}

/** Reads and validates a file; a missing file, bad YAML or bad values all throw ConfigError. */
export function loadConfig(file?: string): AgentConfig {
  if (!file) return parseConfig({});
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, '', `cannot read: ${(err as Error).message}`);
  }
  return parseConfigText(text, file);
}

/** agent.yaml's text, as read from `file`: parsed and checked (ConfigError naming the key). */
export function parseConfigText(text: string, file: string): AgentConfig {
  const parsed = YAML.parseDocument(text, { uniqueKeys: true });
  const first = parsed.errors[0];
  if (first) {
    const { where, reason } = yamlErrorText(first);
    throw new ConfigError(file, where, `invalid YAML: ${reason}`);
  }
  let doc: unknown;
  try {
    doc = parsed.toJS();
  } catch (err) {
    // e.g. an alias to an anchor defined later, or too many aliases
    throw new ConfigError(file, '', `invalid YAML: ${yamlValueError(err)}`);
  }
  return parseConfig(doc, file);
}
