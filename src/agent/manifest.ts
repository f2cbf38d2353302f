/**
 * NetworkService manifests in the form NSM's Kubernetes resources use
 * (apiVersion networkservicemesh.io/v1, kind NetworkService, spec = the registry.NetworkService
 * fields in their proto JSON names: payload, matches[].source_selector, routes[].destination_selector,
 * fallthrough, metadata.labels). camelCase spellings are accepted too. Errors name the file,
 * the document and the key.
 */
import { lazyModule } from '../core/lazy';
import type { NetworkService, Match } from '../api';
import { AgentError } from '../core/errors';
import { validateLabels } from '../core/validate';
import { yamlErrorText, yamlValueError } from './config/yaml-error';

/** Loaded on first use: only `apply` and the daemon read manifests. */
const YAML = lazyModule(() => require('yaml') as typeof import('yaml'));

const NAME_RE = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;

/** The largest manifest file `apply` and `delete -f` read (docs/commands.md). */
export const MAX_MANIFEST_BYTES = 1024 * 1024;

type Obj = Record<string, unknown>;

function fail(where: string, key: string, reason: string): never {
  throw new AgentError('INVALID_ARGUMENT', key ? `${where}: ${key}: ${reason}` : `${where}: ${reason}`);
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function pick(o: Obj, snake: string, camel: string): unknown {
  return o[snake] ?? o[camel];
}

function labels(where: string, key: string, v: unknown): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isObj(v)) fail(where, key, 'must be a map of strings');
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (typeof val !== 'string' && typeof val !== 'number' && typeof val !== 'boolean') fail(where, `${key}.${k}`, 'must be a string');
    out[k] = String(val);
  }
  try {
    validateLabels(out, key);
  } catch (err) {
    throw new AgentError('INVALID_ARGUMENT', `${where}: ${(err as Error).message}`);
  }
  return out;
}

function only(where: string, key: string, o: Obj, allowed: string[]): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) fail(where, key ? `${key}.${k}` : k, 'unknown key');
}

function parseMatch(where: string, key: string, m: unknown): Match {
  if (!isObj(m)) fail(where, key, 'must be a map');
  only(where, key, m, ['source_selector', 'sourceSelector', 'routes', 'fallthrough', 'metadata']);
  const routes = pick(m, 'routes', 'routes') ?? [];
  if (!Array.isArray(routes)) fail(where, `${key}.routes`, 'must be a list');
  const fall = m['fallthrough'];
  if (fall !== undefined && typeof fall !== 'boolean') fail(where, `${key}.fallthrough`, 'must be true or false');
  const meta = m['metadata'];
  if (meta !== undefined && meta !== null && !isObj(meta)) fail(where, `${key}.metadata`, 'must be a map');
  return {
    source_selector: labels(where, `${key}.source_selector`, pick(m, 'source_selector', 'sourceSelector')),
    routes: routes.map((r, i) => {
      const rk = `${key}.routes[${i}]`;
      if (!isObj(r)) fail(where, rk, 'must be a map');
      only(where, rk, r, ['destination_selector', 'destinationSelector', 'weight']);
      const weight = r['weight'];
      if (weight !== undefined && !(Number.isInteger(weight) && (weight as number) >= 0)) fail(where, `${rk}.weight`, 'must be a non-negative integer');
      return {
        destination_selector: labels(where, `${rk}.destination_selector`, pick(r, 'destination_selector', 'destinationSelector')),
        weight: (weight as number | undefined) ?? 0,
      };
    }),
    fallthrough: fall ?? false,
    metadata: meta ? { labels: labels(where, `${key}.metadata.labels`, (meta as Obj)['labels']) } : null,
  };
}

/** One manifest document to a registry.NetworkService. */
export function parseNetworkService(doc: unknown, where: string): NetworkService {
  if (!isObj(doc)) fail(where, '', 'must be a NetworkService manifest (a map)');
  if (doc['apiVersion'] !== 'networkservicemesh.io/v1') fail(where, 'apiVersion', 'must be networkservicemesh.io/v1');
  if (doc['kind'] !== 'NetworkService') fail(where, 'kind', 'must be NetworkService');
  const meta = doc['metadata'];
  if (!isObj(meta)) fail(where, 'metadata', 'is required');
  const name = meta['name'];
  if (typeof name !== 'string' || !NAME_RE.test(name)) fail(where, 'metadata.name', 'must be a lower-case DNS name');
  const spec = doc['spec'] ?? {};
  if (!isObj(spec)) fail(where, 'spec', 'must be a map');
  only(where, 'spec', spec, ['payload', 'matches']);
  const payload = spec['payload'] ?? 'IP';
  if (payload !== 'IP' && payload !== 'ETHERNET') fail(where, 'spec.payload', 'must be IP or ETHERNET');
  const matches = spec['matches'] ?? [];
  if (!Array.isArray(matches)) fail(where, 'spec.matches', 'must be a list');
  return { name, payload, matches: matches.map((m, i) => parseMatch(where, `spec.matches[${i}]`, m)) };
}

export function tooLarge(file: string): AgentError {
  return new AgentError('INVALID_ARGUMENT', `${file}: the file is larger than ${MAX_MANIFEST_BYTES} bytes (1 MiB), the most a manifest file may have`);
}

/** All NetworkService documents of a YAML text (documents separated by ---). */
export function parseManifests(text: string, file: string): NetworkService[] {
  const size = Buffer.byteLength(text);
  if (size > MAX_MANIFEST_BYTES) throw tooLarge(file);
  const docs = YAML.parseAllDocuments(text);
  const out: NetworkService[] = [];
  docs.forEach((d, i) => {
    const where = `${file} (document ${i + 1})`;
    if ('errors' in d && d.errors.length) {
      const e = yamlErrorText(d.errors[0]!);
      fail(where, e.where, `invalid YAML: ${e.reason}`);
    }
    let js: unknown;
    try {
      js = d.toJS();
    } catch (err) {
      fail(where, '', `invalid YAML: ${yamlValueError(err)}`);
    }
    if (js === null || js === undefined) return;
    out.push(parseNetworkService(js, where));
  });
  if (!out.length) throw new AgentError('INVALID_ARGUMENT', `${file}: no NetworkService manifest found`);
  return out;
}
