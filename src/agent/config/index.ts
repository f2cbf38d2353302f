/**
 * agent.yaml: read, validated against AGENT_SCHEMA and a few semantic rules, and filled with
 * defaults. Every error names the file, the key (dotted path) and what is wrong; the caller
 * exits non-zero before touching the host.
 */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Ajv, { ErrorObject } from 'ajv';
import YAML from 'yaml';
import { AGENT_SCHEMA } from './schema';
import { parseDuration } from './duration';
import { parsePrefix } from '../../networkservice/ipam/cidr';
import { idMatcher, trustDomainName } from '../../spire/id';
import { endpointTarget } from '../../spire/workload';

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
  /** The kind of endpoint (src/agent/endpoints/kinds.ts); absent: p2p. Set by code: agent.yaml has no key for it. */
  kind?: string;
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
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly file: string,
    readonly key: string,
    readonly reason: string,
  ) {
    super(`${file}: ${key || '(top level)'}: ${reason}`);
  }
}

export const DEFAULT_SOCKET = '/run/nsm-agent/agent.sock';

function defaultName(): string {
  const h = os.hostname().toLowerCase().replace(/[^a-z0-9.-]/g, '-');
  return h.replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '') || 'nsm-agent';
}

const ajv = new Ajv({ allErrors: false, strict: true });
// Compiled on first use: CLI commands that never read agent.yaml do not pay for it.
let compiled: ReturnType<typeof ajv.compile> | undefined;
const validator = () => (compiled ??= ajv.compile(AGENT_SCHEMA));

function keyOf(err: ErrorObject): string {
  const parts = err.instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (err.keyword === 'additionalProperties') parts.push(String(err.params['additionalProperty']));
  if (err.keyword === 'required') parts.push(String(err.params['missingProperty']));
  return parts.map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i ? `.${p}` : p)).join('');
}

function reasonOf(err: ErrorObject): string {
  switch (err.keyword) {
    case 'additionalProperties':
      return 'unknown key';
    case 'required':
      return 'is required';
    case 'enum':
      return `must be one of ${(err.params['allowedValues'] as unknown[]).join(', ')}`;
    case 'pattern':
      return 'has an invalid format';
    default:
      return err.message ?? 'is invalid';
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
    names.add(e.name);
    const pools = String(e.cidr).split(',').map((s) => s.trim());
    for (const p of pools) {
      if (!parsePrefix(p) || !p.includes('/')) throw new ConfigError(file, `${key}.cidr`, `${p} is not a CIDR prefix`);
    }
    for (const [j, p] of (e.excludedPrefixes ?? []).entries()) {
      if (!parsePrefix(p)) throw new ConfigError(file, `${key}.excludedPrefixes[${j}]`, `${p} is not a CIDR prefix`);
    }
    return {
      name: e.name,
      services: e.services,
      labels: e.labels ?? {},
      cidr: e.cidr,
      netns: e.netns ?? 'host',
      payload: e.payload ?? 'IP',
      interface: e.interface,
      excludedPrefixes: e.excludedPrefixes ?? [],
    };
  });

  return {
    file,
    name: raw.name ?? defaultName(),
    logLevel: raw.logLevel ?? 'info',
    stateDir,
    listen: { unix: raw.listen?.unix ?? DEFAULT_SOCKET, tcp: raw.listen?.tcp, allowUids: raw.listen?.allowUids ?? [] },
    tunnelIP: raw.tunnelIP ?? 'auto',
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
    connections: (raw.connections ?? []).map((c: any) => ({ url: c.url, netns: c.netns ?? 'host', id: c.id })),
  };
}

function parseIdentity(file: string, id: Record<string, any>, stateDir: string): IdentityConfig {
  const source: IdentityConfig['source'] = id.source ?? 'dev';
  if (source === 'files' && !id.files) throw new ConfigError(file, 'identity.files', 'is required with identity.source files');
  if (id.socket !== undefined) {
    try {
      endpointTarget(id.socket);
    } catch (err) {
      throw new ConfigError(file, 'identity.socket', (err as Error).message);
    }
  }
  for (const td of Object.keys(id.files?.federated ?? {})) {
    try {
      trustDomainName(td);
    } catch (err) {
      throw new ConfigError(file, `identity.files.federated.${td}`, (err as Error).message);
    }
  }
  return {
    source,
    socket: id.socket,
    files: id.files ? { cert: id.files.cert, key: id.files.key, bundle: id.files.bundle, federated: id.files.federated ?? {} } : undefined,
    dev: {
      caDir: id.dev?.caDir ?? path.join(stateDir, 'dev-ca'),
      trustDomain: id.dev?.trustDomain ?? 'nsm.local',
      allowNonLoopback: id.dev?.allowNonLoopback ?? false,
    },
  };
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
  const parsed = YAML.parseDocument(text, { uniqueKeys: true });
  const first = parsed.errors[0];
  if (first) {
    const line = first.linePos?.[0];
    throw new ConfigError(file, line ? `line ${line.line}` : '', `invalid YAML: ${first.message.split('\n')[0]}`);
  }
  return parseConfig(parsed.toJS(), file);
}
