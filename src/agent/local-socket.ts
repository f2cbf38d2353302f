/**
 * The local unix socket: plain gRPC (no TLS), guarded by the socket file's mode (0660) and by
 * the peer credentials of every connection (SO_PEERCRED). Root, the agent's own user and the
 * uids in `listen.allowUids` may connect; anyone else is disconnected before gRPC sees a byte.
 *
 * The socket is a plain node:net listener; the gRPC server behind it is built when the first
 * connection is accepted (grpc-js and node:http2 are loaded then, not at start). Building it is
 * synchronous, inside the accept callback, so every accepted connection, the first included,
 * is handed to it in the order accepted: nothing is refused or dropped meanwhile, as with a
 * systemd-activated socket.
 */
import net from 'node:net';
import { chmodSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { grpcJs } from '../api/grpc-js';
import type { Logger } from '../core/log';
import { peerCredentials } from '../sys';
import { claimSocketPath } from './socket-claim';

export interface LocalSocket {
  close(): Promise<void>;
}

export async function listenLocal(
  /** The gRPC server, or what builds it: called once, for the first connection that passes the check. */
  server: grpc.Server | (() => grpc.Server),
  socketPath: string,
  opts: { allowUids: number[]; log: Logger; /** For messages; default 'the agent socket'. */ what?: string },
): Promise<LocalSocket> {
  mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o755 });
  await claimSocketPath(socketPath, opts.what ?? 'the agent socket');
  let injector: ReturnType<grpc.Server['createConnectionInjector']> | undefined;
  const allowed = new Set([0, process.getuid?.() ?? 0, ...opts.allowUids]);
  const listener = net.createServer((socket) => {
    try {
      const cred = peerCredentials(socket);
      if (!allowed.has(cred.uid)) {
        opts.log.warn('local connection refused', { pid: cred.pid, uid: cred.uid });
        socket.destroy();
        return;
      }
    } catch (err) {
      opts.log.warn('local connection refused: no peer credentials', { error: err });
      socket.destroy();
      return;
    }
    try {
      injector ??= (typeof server === 'function' ? server() : server).createConnectionInjector(grpcJs.ServerCredentials.createInsecure());
    } catch (err) {
      opts.log.error('local connection refused: the gRPC server could not be built', { error: err });
      socket.destroy();
      return;
    }
    injector.injectConnection(socket);
  });
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(socketPath, () => resolve());
  });
  chmodSync(socketPath, 0o660);
  return {
    close: () =>
      new Promise<void>((resolve) => {
        injector?.destroy();
        listener.close(() => resolve());
        if (existsSync(socketPath)) rmSync(socketPath, { force: true });
      }),
  };
}
