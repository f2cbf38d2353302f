/**
 * The KERNEL mechanism's parameters: `name` (interface name, at most 15 characters) and
 * `inodeURL` (the namespace as a file:// URL to a namespace file: /run/netns/NAME,
 * /proc/PID/ns/net). Validation errors are AgentErrors the caller sees as gRPC statuses.
 */
import type { Mechanism } from '../../api';
import { AgentError } from '../../core/errors';
import { CLS, MAX_IFNAME, PARAM, TYPE } from '../common';

const IFNAME_RE = /^[^\s/:%]+$/;

export function validateIfName(name: string): string {
  if (!name) throw new AgentError('INVALID_INTERFACE_NAME', 'interface name must not be empty');
  if (Buffer.byteLength(name) > MAX_IFNAME) {
    throw new AgentError('INVALID_INTERFACE_NAME', `interface name ${name} is longer than ${MAX_IFNAME} characters`);
  }
  if (!IFNAME_RE.test(name) || name === '.' || name === '..') {
    throw new AgentError('INVALID_INTERFACE_NAME', `interface name ${JSON.stringify(name)} contains invalid characters`);
  }
  return name;
}

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/**
 * NSM's default name: the first ten characters of the service, a dash, random characters, 15 in
 * all. The name only has to be unlikely to collide (a taken name fails the request, it is never
 * reused silently), so Math.random is enough, and cheaper than crypto.randomBytes on the connect
 * path.
 */
export function defaultIfName(service: string): string {
  const head = service.replace(/[^\w.-]/g, '').slice(0, 10) || 'nsm';
  let tail = '';
  for (let i = head.length + 1; i < MAX_IFNAME; i++) tail += ALPHABET[Math.floor(Math.random() * ALPHABET.length)];
  return `${head}-${tail}`;
}

/** The namespace file path from an inodeURL (file:///run/netns/x -> /run/netns/x). */
export function netnsFromInodeURL(url: string): string {
  if (!url) throw new AgentError('INVALID_ARGUMENT', 'the KERNEL mechanism needs an inodeURL parameter');
  if (url.startsWith('file://')) {
    const path = decodeURIComponent(url.slice('file://'.length));
    if (!path.startsWith('/')) throw new AgentError('INVALID_ARGUMENT', `inodeURL ${url} is not an absolute file URL`);
    return path;
  }
  if (url.startsWith('inode://')) {
    throw new AgentError('INVALID_ARGUMENT', `inodeURL ${url} needs file descriptor passing, which this socket does not do; send a file:// URL`);
  }
  throw new AgentError('INVALID_ARGUMENT', `inodeURL ${url} must be a file:// URL`);
}

/**
 * This agent's own KERNEL parameter (upstream NSM has none such): the interface joins, as a
 * port, the bridge of that name in its namespace, and carries no addresses of its own. A
 * passthrough endpoint asks for it on both of its sides.
 */
export const BRIDGE_PARAM = 'bridge';

export interface KernelSide {
  /** Namespace file path. */
  netns: string;
  ifname: string;
  /** The bridge the interface joins (BRIDGE_PARAM), if any. */
  bridge?: string;
}

export function kernelSide(mech: Mechanism | null | undefined): KernelSide {
  const params = mech?.parameters ?? {};
  const bridge = params[BRIDGE_PARAM];
  return {
    ifname: validateIfName(params[PARAM.NAME] ?? ''),
    netns: netnsFromInodeURL(params[PARAM.INODE_URL] ?? ''),
    ...(bridge ? { bridge: validateIfName(bridge) } : {}),
  };
}

export function kernelMechanism(side: { netns: string; ifname: string; bridge?: string | undefined }): Mechanism {
  return {
    cls: CLS.LOCAL,
    type: TYPE.KERNEL,
    parameters: { [PARAM.NAME]: side.ifname, [PARAM.INODE_URL]: `file://${side.netns}`, ...(side.bridge ? { [BRIDGE_PARAM]: side.bridge } : {}) },
  };
}
