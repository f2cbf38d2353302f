// SPDX-License-Identifier: Apache-2.0
/**
 * UDP and TCP sockets inside another network namespace. Node always makes its sockets in the
 * namespace of the thread that runs it; the native addon creates and binds the socket in the
 * target namespace (setns around socket() and bind(), on the calling thread, which is back in
 * its own namespace before this returns), and Node takes the fd over. A socket stays in the
 * namespace it was made in, so everything sent or received on it happens there.
 * Needs CAP_SYS_ADMIN (setns) and, for ports below 1024, CAP_NET_BIND_SERVICE.
 */
import { closeSync } from 'node:fs';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { isIP, createServer, Socket, type Server } from 'node:net';
import { invalidArgument, rethrow } from './errors';
import { native } from './native';
import { netnsPath as resolveNetnsPath, openNetns, type Netns } from './netns';

/** The fd of a socket made and bound in `netns` (a name, path, or open handle). */
function socketFd(netns: string | Netns, type: 'udp' | 'tcp', address: string, port: number): number {
  if (isIP(address) === 0) throw invalidArgument('socketInNetns', address, 'not an IP address');
  const ns = typeof netns === 'string' ? openNetns(resolveNetnsPath(netns)) : netns;
  let fd: number;
  try {
    fd = native().socketInNetns(ns.fd, type, address, port);
  } catch (err) {
    const named = typeof (err as { path?: unknown } | null)?.path === 'string';
    rethrow(err, named ? { detail: `in netns ${ns.path}` } : { path: ns.path });
  } finally {
    if (typeof netns === 'string') ns.close();
  }
  return fd;
}

/**
 * A UDP socket bound to `address`:`port` (0: any free port) inside `netns`, ready to send and
 * receive. Fails with SysError (ENOENT: no such namespace, EADDRINUSE, EADDRNOTAVAIL: the
 * address is not in the namespace).
 */
export async function udpSocketInNetns(netns: string | Netns, address: string, port: number): Promise<UdpSocket> {
  const fd = socketFd(netns, 'udp', address, port);
  const sock = createSocket({ type: isIP(address) === 6 ? 'udp6' : 'udp4' });
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind({ fd }, () => {
        sock.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    try {
      sock.close();
    } catch {
      closeSync(fd);
    }
    rethrow(err, { syscall: 'bind' });
  }
  return sock;
}

/**
 * A TCP server listening on `address`:`port` inside `netns`, calling `onConnection` with each
 * accepted connection (which stays in that namespace). Fails as udpSocketInNetns.
 */
export async function tcpServerInNetns(netns: string | Netns, address: string, port: number, onConnection: (s: Socket) => void): Promise<Server> {
  const fd = socketFd(netns, 'tcp', address, port);
  const server = createServer(onConnection);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ fd }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    server.close();
    try {
      closeSync(fd);
    } catch {
      // already closed with the server
    }
    rethrow(err, { syscall: 'listen' });
  }
  return server;
}

/**
 * A TCP client socket made inside `netns` (bound to the unspecified address of `family`, any
 * port), not connected yet: call connect() on it; the connection leaves from that namespace.
 */
export function tcpClientInNetns(netns: string | Netns, family: 4 | 6): Socket {
  const fd = socketFd(netns, 'tcp', family === 4 ? '0.0.0.0' : '::', 0);
  try {
    return new Socket({ fd, readable: true, writable: true });
  } catch (err) {
    closeSync(fd);
    rethrow(err, { syscall: 'socket' });
  }
}
