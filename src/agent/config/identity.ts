/**
 * agent.yaml's `identity:` section: where the SVID comes from and which other trust domains'
 * bundles are fetched (SPIFFE bundle endpoints, profile https_spiffe). Errors name the file and
 * the key.
 */
import path from 'node:path';
import { ConfigError } from './error';
import { parseDuration } from './duration';
import { parseWorkloadId, trustDomainName } from '../../spire/id';
import type { FederationSettings } from '../../spire/federation';
import { endpointTarget } from '../../spire/endpoint';
import type { IdentityConfig } from './index';

export function parseIdentity(file: string, id: Record<string, any>, stateDir: string): IdentityConfig {
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
  const federated = new Set(Object.keys(id.files?.federated ?? {}).map((td) => trustDomainName(td)));
  const federation = ((id.federation ?? []) as Record<string, any>[]).map((f, i) => parseFederation(file, f, i, federated));
  let bundleEndpoint: IdentityConfig['bundleEndpoint'];
  if (id.bundleEndpoint) {
    const hint = parseDuration(id.bundleEndpoint.refreshHint ?? '5m');
    if (hint === undefined || hint < 1000) throw new ConfigError(file, 'identity.bundleEndpoint.refreshHint', 'must be at least 1s');
    bundleEndpoint = { listen: id.bundleEndpoint.listen, refreshHintS: Math.round(hint / 1000) };
  }
  return {
    ...(federation.length ? { federation } : {}),
    ...(bundleEndpoint ? { bundleEndpoint } : {}),
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

function parseFederation(file: string, f: Record<string, any>, i: number, federated: Set<string>): FederationSettings {
  const key = `identity.federation[${i}]`;
  let trustDomain: string;
  try {
    trustDomain = trustDomainName(f.trustDomain);
  } catch (err) {
    throw new ConfigError(file, `${key}.trustDomain`, (err as Error).message);
  }
  if (federated.has(trustDomain)) throw new ConfigError(file, `${key}.trustDomain`, `${trustDomain} also has a bundle file in identity.files.federated: give one or the other`);
  federated.add(trustDomain);
  try {
    const u = new URL(f.bundleEndpoint);
    if (u.protocol !== 'https:' || !u.hostname) throw new Error('is not an https://host[:port]/path URL');
  } catch (err) {
    throw new ConfigError(file, `${key}.bundleEndpoint`, (err as Error).message.startsWith('is ') ? (err as Error).message : `${f.bundleEndpoint} is not a URL`);
  }
  try {
    parseWorkloadId(f.endpointId);
  } catch (err) {
    throw new ConfigError(file, `${key}.endpointId`, (err as Error).message);
  }
  // unset bounds take federation.ts's defaults (5s, 1h)
  const bound = (name: 'minRefresh' | 'maxRefresh') => {
    if (f[name] === undefined) return undefined;
    const ms = parseDuration(f[name]);
    if (ms === undefined || ms < 1000) throw new ConfigError(file, `${key}.${name}`, 'must be at least 1s');
    return ms;
  };
  const minRefreshMs = bound('minRefresh');
  const maxRefreshMs = bound('maxRefresh');
  if ((maxRefreshMs ?? 3_600_000) < (minRefreshMs ?? 5_000)) throw new ConfigError(file, `${key}.maxRefresh`, 'is below minRefresh');
  return {
    trustDomain,
    bundleEndpoint: f.bundleEndpoint,
    endpointId: f.endpointId,
    ...(f.bundle ? { bundle: f.bundle } : {}),
    ...(minRefreshMs !== undefined ? { minRefreshMs } : {}),
    ...(maxRefreshMs !== undefined ? { maxRefreshMs } : {}),
  };
}
