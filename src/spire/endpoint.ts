/**
 * The Workload API address (SPIFFE_ENDPOINT_SOCKET or identity.socket) as a grpc-js target.
 * Apart from the client (workload.ts) so that reading agent.yaml does not load grpc-js.
 */
import { isIP } from 'node:net';
import { AgentError } from '../core/errors';

export const ENDPOINT_ENV = 'SPIFFE_ENDPOINT_SOCKET';

/**
 * The grpc-js target for a Workload API address (RFC 3986 URI):
 * `unix:///abs/path` or `unix:/abs/path` → `unix:///abs/path`;
 * `tcp://<IP>:<port>` → `ipv4:` / `ipv6:` target. Anything else is INVALID_ARGUMENT.
 */
export function endpointTarget(address: string | undefined = process.env[ENDPOINT_ENV]): string {
  const bad = (why: string) =>
    new AgentError('INVALID_ARGUMENT', `workload endpoint address ${JSON.stringify(address)} ${why}`);
  if (!address) {
    throw new AgentError('INVALID_ARGUMENT', `workload endpoint socket address is not configured (set ${ENDPOINT_ENV} or identity.socket)`);
  }
  let u: URL;
  try {
    u = new URL(address);
  } catch {
    throw bad('is not a URI');
  }
  if (u.username || u.password) throw bad('must not carry user info');
  if (u.search || u.hash || address.includes('?') || address.includes('#')) throw bad('must not have a query or fragment');
  if (u.protocol === 'unix:') {
    if (u.host) throw bad('must not have an authority: use unix:///path or unix:/path');
    if (!u.pathname.startsWith('/')) throw bad('must name an absolute socket path');
    return `unix://${decodeURIComponent(u.pathname)}`;
  }
  if (u.protocol === 'tcp:') {
    if (u.pathname && u.pathname !== '/') throw bad('must not have a path');
    if (!u.port) throw bad('must have a port');
    const host = u.hostname.replace(/^\[|\]$/g, '');
    const family = isIP(host);
    if (!family) throw bad('must use an IP address, not a host name');
    return family === 4 ? `ipv4:${host}:${u.port}` : `ipv6:[${host}]:${u.port}`;
  }
  throw bad('must use the unix or tcp scheme');
}
