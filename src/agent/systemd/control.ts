/**
 * The systemd socket, one per agent socket (controlSocketPath): /run/nsm-agent/systemd.sock for
 * the default /run/nsm-agent/agent.sock, `<dir>/<name>-systemd.sock` for any other `<name>.sock`,
 * what nsm-connect@.service and ExecReload= use to reach the agent and wait for the result:
 *
 *   {"op":"reload"}                     re-read agent.yaml and apply it  -> ReloadResult
 *   {"op":"unit-start","spec":{...}}   apply a unit's declaration        -> UnitState
 *   {"op":"unit-stop","unit":"x.service"}                                -> {"stopped":bool}
 *   {"op":"units"}                                                       -> UnitState[]
 *   {"op":"status"}                    what nsmagent.v1.Agent Status answers, as the CLI
 *                                      decodes it from the wire                -> StatusResponse
 *
 * One JSON request line, one JSON answer line ({"ok":true,"result":...} or
 * {"ok":false,"code":"...","message":"..."}), then the server closes. Mode 0600, and only root
 * and the agent's own user pass the SO_PEERCRED check: these operations change what the host
 * serves. It needs no gRPC on either side: systemd's helpers use it, and `nsm-agent status`
 * asks it first (a CLI that loads neither HTTP/2 nor the codecs, and an agent that loads no
 * gRPC for it); the gRPC control API stays what the CLI uses for everything else, and for
 * status where this socket cannot be used (another user, an older agent).
 */
import net from 'node:net';
import { chmodSync, rmSync } from 'node:fs';
import { AgentError } from '../../core/errors';
import type { Logger } from '../../core/log';
import { peerCredentials } from '../../sys/peercred';
import type { ReloadResult } from '../reload';
import type { UnitSpec, UnitState } from './units';
import { claimSocketPath } from '../socket-claim';
import type { ControlRequest } from './control-client';

export { CONTROL_SOCKET, controlCall, controlSocketPath, type ControlRequest } from './control-client';

const MAX_REQUEST = 1 << 20;

export interface ControlHandlers {
  reload(): Promise<ReloadResult>;
  unitStart(spec: UnitSpec): Promise<UnitState>;
  unitStop(unit: string): Promise<boolean>;
  units(): UnitState[];
  /** The Status answer as it is on the wire (decoded as a gRPC client decodes it). */
  status(): Promise<unknown>;
}

export interface ControlServer {
  readonly path: string;
  close(): Promise<void>;
}

async function dispatch(req: ControlRequest, h: ControlHandlers): Promise<unknown> {
  switch (req?.op) {
    case 'reload':
      return h.reload();
    case 'unit-start':
      if (!req.spec || typeof req.spec.unit !== 'string') throw new AgentError('INVALID_ARGUMENT', 'unit-start needs a spec');
      return h.unitStart(req.spec);
    case 'unit-stop':
      if (typeof req.unit !== 'string') throw new AgentError('INVALID_ARGUMENT', 'unit-stop needs a unit');
      return { stopped: await h.unitStop(req.unit) };
    case 'units':
      return h.units();
    case 'status':
      return h.status();
    default:
      throw new AgentError('INVALID_ARGUMENT', `unknown op ${JSON.stringify((req as { op?: unknown })?.op)}`);
  }
}

export async function listenControl(socketPath: string, handlers: ControlHandlers, opts: { log: Logger }): Promise<ControlServer> {
  await claimSocketPath(socketPath, 'the systemd socket');
  const allowed = new Set([0, process.getuid?.() ?? 0]);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    try {
      const cred = peerCredentials(socket);
      if (!allowed.has(cred.uid)) {
        opts.log.warn('systemd socket: connection refused', { pid: cred.pid, uid: cred.uid });
        socket.destroy();
        return;
      }
    } catch {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buf = '';
    let handled = false;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      if (handled) return;
      buf += chunk;
      if (buf.length > MAX_REQUEST) {
        handled = true;
        socket.end(JSON.stringify({ ok: false, code: 'INVALID_ARGUMENT', message: 'request too large' }) + '\n');
        return;
      }
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      handled = true;
      let req: ControlRequest;
      try {
        req = JSON.parse(buf.slice(0, nl)) as ControlRequest;
      } catch {
        socket.end(JSON.stringify({ ok: false, code: 'INVALID_ARGUMENT', message: 'request is not JSON' }) + '\n');
        return;
      }
      dispatch(req, handlers).then(
        (result) => socket.end(JSON.stringify({ ok: true, result }) + '\n'),
        (err) => {
          const e = AgentError.from(err);
          socket.end(JSON.stringify({ ok: false, code: e.code, message: e.message, ...(e.component ? { component: e.component } : {}) }) + '\n');
        },
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  chmodSync(socketPath, 0o600);
  return {
    path: socketPath,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
        rmSync(socketPath, { force: true });
      }),
  };
}
