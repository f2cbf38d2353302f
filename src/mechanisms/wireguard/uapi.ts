// SPDX-License-Identifier: Apache-2.0
/**
 * Client for the cross-platform WireGuard userspace API (UAPI) that
 * wireguard-go serves on the unix stream socket /var/run/wireguard/<name>.sock
 * (https://www.wireguard.com/xplatform/).
 *
 * Protocol: one request per connection here (simple and robust):
 *   set: "set=1\n" + key=value lines + "\n"  ->  "errno=0\n\n"
 *   get: "get=1\n\n"                          ->  key=value lines, "errno=0\n\n"
 * Keys travel as 64 lowercase hex characters; the API of this module takes
 * and returns base64 keys (the `wg` text form) and converts.
 *
 * The socket lives on the shared filesystem, not in a network namespace, so
 * these calls reach a device wherever it has been moved. NAME is the name the
 * process was started with; it does not follow later renames of the link.
 *
 * Every failure is an AgentError: UNAVAILABLE when the socket cannot be
 * reached, DATAPLANE (a UapiError carrying the errno) when the daemon answers
 * errno != 0, DEADLINE_EXCEEDED on timeout, INVALID_ARGUMENT for bad input.
 */
import { connect } from 'node:net';
import { AgentError } from '../../core/errors';
import { hexToKey, keyToHex } from './keys';

export const UAPI_DIR = '/var/run/wireguard';
const DEFAULT_TIMEOUT_MS = 2000;

/** wireguard-go's errno for a listen_port it cannot bind (-EADDRINUSE). */
export const UAPI_PORT_IN_USE = -98;

/** The daemon answered a request with errno != 0. */
export class UapiError extends AgentError {
  constructor(
    readonly errno: number,
    socketPath: string,
  ) {
    super('DATAPLANE', `UAPI ${socketPath}: errno=${errno}${errno === UAPI_PORT_IN_USE ? ' (listen port in use)' : ''}`);
  }
}

export function uapiSocketPath(name: string): string {
  return `${UAPI_DIR}/${name}.sock`;
}

/** wireguard-go's output goes to a file next to its UAPI socket, never to a pipe (see the supervisor). */
export function wireguardGoLogPath(name: string): string {
  return `${UAPI_DIR}/${name}.log`;
}

export interface UapiPeerConfig {
  /** base64 public key of the peer. */
  publicKey: string;
  /** 'ip:port' or '[ipv6]:port'. */
  endpoint?: string;
  /** Seconds; 0 disables. */
  persistentKeepalive?: number;
  /** Replace (not add to) the peer's allowed IPs. Default true. */
  replaceAllowedIps?: boolean;
  allowedIps?: string[];
}

export interface UapiSetRequest {
  /** base64 private key. */
  privateKey?: string;
  listenPort?: number;
  fwmark?: number;
  /** Remove all peers before adding `peers`. */
  replacePeers?: boolean;
  peers?: UapiPeerConfig[];
}

export interface UapiPeerState {
  publicKey: string;
  endpoint?: string;
  persistentKeepalive: number;
  allowedIps: string[];
  /** undefined if there was never a handshake. */
  lastHandshake?: Date;
  rxBytes: number;
  txBytes: number;
}

export interface UapiDeviceState {
  /** base64; absent if not set. */
  privateKey?: string;
  listenPort: number;
  fwmark: number;
  peers: UapiPeerState[];
}

function checkEndpoint(ep: string): void {
  if (!/^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d{1,5}$/.test(ep)) {
    throw new AgentError('INVALID_ARGUMENT', `bad WireGuard endpoint '${ep}' (want ip:port or [ipv6]:port)`);
  }
  const port = Number(ep.slice(ep.lastIndexOf(':') + 1));
  if (port < 1 || port > 65535) throw new AgentError('INVALID_ARGUMENT', `bad WireGuard endpoint port in '${ep}'`);
}

function checkPort(p: number, what: string): void {
  if (!Number.isInteger(p) || p < 0 || p > 65535) throw new AgentError('INVALID_ARGUMENT', `bad ${what} ${p}`);
}

/** Formats a set request (without the trailing blank line). Validates all fields. */
export function formatSet(req: UapiSetRequest): string {
  const lines = ['set=1'];
  if (req.privateKey !== undefined) lines.push(`private_key=${keyToHex(req.privateKey, 'private')}`);
  if (req.listenPort !== undefined) {
    checkPort(req.listenPort, 'listen port');
    lines.push(`listen_port=${req.listenPort}`);
  }
  if (req.fwmark !== undefined) lines.push(`fwmark=${req.fwmark >>> 0}`);
  if (req.replacePeers === true) lines.push('replace_peers=true');
  for (const peer of req.peers ?? []) {
    lines.push(`public_key=${keyToHex(peer.publicKey, 'public')}`);
    if (peer.endpoint !== undefined) {
      checkEndpoint(peer.endpoint);
      lines.push(`endpoint=${peer.endpoint}`);
    }
    if (peer.persistentKeepalive !== undefined) {
      checkPort(peer.persistentKeepalive, 'persistent keepalive');
      lines.push(`persistent_keepalive_interval=${peer.persistentKeepalive}`);
    }
    if (peer.replaceAllowedIps !== false) lines.push('replace_allowed_ips=true');
    for (const ip of peer.allowedIps ?? []) {
      if (!/^[0-9a-fA-F:.]+\/\d{1,3}$/.test(ip)) throw new AgentError('INVALID_ARGUMENT', `bad allowed IP '${ip}'`);
      lines.push(`allowed_ip=${ip}`);
    }
  }
  return lines.join('\n') + '\n';
}

/** Parses the key=value body of a get response (errno line already checked). */
export function parseGet(text: string): UapiDeviceState {
  const dev: UapiDeviceState = { listenPort: 0, fwmark: 0, peers: [] };
  let peer: UapiPeerState | undefined;
  let hsSec = 0;
  let hsNsec = 0;
  const finishPeer = (): void => {
    if (peer !== undefined && (hsSec !== 0 || hsNsec !== 0)) peer.lastHandshake = new Date(hsSec * 1000 + Math.floor(hsNsec / 1e6));
    hsSec = 0;
    hsNsec = 0;
  };
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    switch (key) {
      case 'private_key':
        dev.privateKey = hexToKey(value);
        break;
      case 'listen_port':
        dev.listenPort = Number(value);
        break;
      case 'fwmark':
        dev.fwmark = Number(value);
        break;
      case 'public_key':
        finishPeer();
        peer = { publicKey: hexToKey(value), persistentKeepalive: 0, allowedIps: [], rxBytes: 0, txBytes: 0 };
        dev.peers.push(peer);
        break;
      default:
        if (peer === undefined) break;
        if (key === 'endpoint') peer.endpoint = value;
        else if (key === 'persistent_keepalive_interval') peer.persistentKeepalive = Number(value);
        else if (key === 'allowed_ip') peer.allowedIps.push(value);
        else if (key === 'last_handshake_time_sec') hsSec = Number(value);
        else if (key === 'last_handshake_time_nsec') hsNsec = Number(value);
        else if (key === 'rx_bytes') peer.rxBytes = Number(value);
        else if (key === 'tx_bytes') peer.txBytes = Number(value);
    }
  }
  finishPeer();
  return dev;
}

/**
 * Sends one raw request (must end with "\n\n") and returns the response up to
 * and including its terminating blank line, with the errno line checked and
 * removed.
 */
export function uapiRequest(socketPath: string, request: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let done = false;
    const sock = connect(socketPath);
    const finish = (err: AgentError | undefined, body?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(body ?? '');
    };
    const timer = setTimeout(
      () => finish(new AgentError('DEADLINE_EXCEEDED', `UAPI ${socketPath}: no answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(request));
    sock.on('data', (chunk: string) => {
      buf += chunk;
      const end = buf.indexOf('\n\n');
      if (end < 0) return;
      const body = buf.slice(0, end + 1);
      const m = /(?:^|\n)errno=(-?\d+)\n$/.exec(body);
      if (m === null) {
        finish(new AgentError('DATAPLANE', `UAPI ${socketPath}: malformed response`));
        return;
      }
      const errno = Number(m[1]);
      if (errno !== 0) finish(new UapiError(errno, socketPath));
      else finish(undefined, body.slice(0, m.index));
    });
    sock.on('error', (err: NodeJS.ErrnoException) =>
      finish(new AgentError('UNAVAILABLE', `UAPI ${socketPath}: ${err.code ?? err.message}`, { cause: err })),
    );
    sock.on('close', () => finish(new AgentError('UNAVAILABLE', `UAPI ${socketPath}: connection closed early`)));
  });
}

/** Applies a configuration change. */
export async function uapiSet(socketPath: string, req: UapiSetRequest, timeoutMs?: number): Promise<void> {
  await uapiRequest(socketPath, formatSet(req) + '\n', timeoutMs);
}

/** Reads the device state. */
export async function uapiGet(socketPath: string, timeoutMs?: number): Promise<UapiDeviceState> {
  return parseGet(await uapiRequest(socketPath, 'get=1\n\n', timeoutMs));
}

/** True if something accepts connections on the socket (a live daemon). */
export function uapiAlive(socketPath: string, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(socketPath);
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(false);
    }, timeoutMs);
    sock.on('connect', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(true);
    });
    sock.on('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}
