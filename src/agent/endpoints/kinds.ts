/**
 * The kinds of endpoint the agent can host, by the name EndpointConfig.kind gives. A new kind
 * is a folder beside ./p2p exporting an EndpointKind, and one line here.
 */
import { AgentError } from '../../core/errors';
import type { EndpointConfig } from '../config';
import type { EndpointKind } from './kind';
import { p2pEndpoint } from './p2p';
import { passthroughEndpoint } from './passthrough';
import { vl3Endpoint } from './vl3';

export const ENDPOINT_KINDS: Readonly<Record<string, EndpointKind>> = {
  p2p: p2pEndpoint,
  passthrough: passthroughEndpoint,
  vl3: vl3Endpoint,
};

/** The kind of an endpoint whose configuration names none. */
export const DEFAULT_ENDPOINT_KIND = 'p2p';

export function endpointKind(cfg: EndpointConfig): EndpointKind {
  const name = cfg.kind ?? DEFAULT_ENDPOINT_KIND;
  const kind = Object.hasOwn(ENDPOINT_KINDS, name) ? ENDPOINT_KINDS[name] : undefined;
  if (!kind) throw new AgentError('INVALID_ARGUMENT', `endpoint ${cfg.name}: unknown kind ${JSON.stringify(name)} (known: ${Object.keys(ENDPOINT_KINDS).join(', ')})`);
  return kind;
}
