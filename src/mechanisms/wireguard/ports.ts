// SPDX-License-Identifier: Apache-2.0
/**
 * Local UDP port allocator for WireGuard listen ports: one distinct port per
 * connection (Linux cannot share a UDP port between WireGuard devices, unlike
 * VPP), taken from a configurable range (default 51820–52819).
 *
 * A port is handed out only if (a) this allocator has not handed it out and
 * (b) a probe bind of a UDP socket on the tunnel IP (in the agent's own
 * namespace, where the devices' sockets live) succeeds; the probe socket is
 * closed at once. Candidates are tried round-robin from just after the last
 * allocated port, so a just-released port is not reused immediately (the
 * old peer may still be sending to it).
 *
 * There is an unavoidable race between probe and the daemon's bind; the
 * caller treats a failing listen_port set like a collision and allocates again.
 */
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { AgentError } from '../../core/errors';

export const DEFAULT_PORT_MIN = 51820;
export const DEFAULT_PORT_MAX = 52819;

export interface PortAllocatorOptions {
  /** Inclusive range. */
  min?: number;
  max?: number;
  /** Address to probe on (the tunnel IP); default 0.0.0.0. */
  host?: string;
}

/** Resolves true if a UDP socket can be bound to host:port right now. */
export function probeUdpPort(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4', reuseAddr: false });
    sock.once('error', () => {
      sock.close();
      resolve(false);
    });
    sock.bind({ address: host, port, exclusive: true }, () => {
      sock.close(() => resolve(true));
    });
  });
}

export class UdpPortAllocator {
  readonly min: number;
  readonly max: number;
  readonly host: string;
  private readonly used = new Set<number>();
  private next: number;

  constructor(options: PortAllocatorOptions = {}) {
    this.min = options.min ?? DEFAULT_PORT_MIN;
    this.max = options.max ?? DEFAULT_PORT_MAX;
    this.host = options.host ?? '0.0.0.0';
    if (!Number.isInteger(this.min) || !Number.isInteger(this.max) || this.min < 1 || this.max > 65535 || this.min > this.max) {
      throw new AgentError('INVALID_ARGUMENT', `bad WireGuard port range ${this.min}-${this.max}`);
    }
    this.next = this.min;
  }

  /** A free port, now marked as used. POOL_EXHAUSTED if none is left. */
  async allocate(): Promise<number> {
    const size = this.max - this.min + 1;
    for (let i = 0; i < size; i++) {
      const port = this.next;
      this.next = port >= this.max ? this.min : port + 1;
      if (this.used.has(port)) continue;
      this.used.add(port); // reserve across the await so concurrent calls differ
      if (await probeUdpPort(this.host, port)) return port;
      this.used.delete(port);
    }
    throw new AgentError('POOL_EXHAUSTED', `no free UDP port in ${this.min}-${this.max} on ${this.host}`);
  }

  /**
   * Marks a known port as used (e.g. a connection restored after an agent
   * restart keeps its port). False if it is outside the range or taken here.
   */
  reserve(port: number): boolean {
    if (port < this.min || port > this.max || this.used.has(port)) return false;
    this.used.add(port);
    return true;
  }

  release(port: number): void {
    this.used.delete(port);
  }

  get allocated(): number[] {
    return [...this.used].sort((a, b) => a - b);
  }
}

/** The sysctl listing the ports the kernel never hands out as ephemeral ports (IPv4 and IPv6). */
export const RESERVED_PORTS_SYSCTL = 'net.ipv4.ip_local_reserved_ports';

/**
 * `current` (the sysctl's text: comma-separated ports and first-last ranges, as the kernel
 * prints it) with `min`-`max` added, or undefined if every port of it is already reserved.
 * Throws INVALID_ARGUMENT on text that is not such a list.
 */
export function reservedPortsWith(current: string, min: number, max: number): string | undefined {
  const text = current.trim();
  const spans: [number, number][] = [];
  for (const item of text === '' ? [] : text.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(item.trim());
    if (!m) throw new AgentError('INVALID_ARGUMENT', `${RESERVED_PORTS_SYSCTL}: cannot read '${current}'`);
    spans.push([Number(m[1]), Number(m[2] ?? m[1])]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  let next = min; // the first port of min-max not yet seen reserved
  for (const [a, b] of spans) if (a <= next && b >= next) next = b + 1;
  if (next > max) return undefined;
  return text === '' ? `${min}-${max}` : `${text},${min}-${max}`;
}
