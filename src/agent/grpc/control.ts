/**
 * nsmagent.v1.Agent, the CLI's control API, served on the unix socket only.
 */
import type * as grpc from '@grpc/grpc-js';
import { api } from '../../api';
import { toTimestamp } from '../../api/time';
import { Ctx } from '../../core/ctx';
import type { HeldConnections } from '../held';
import { unaryHandler as handle } from './call-ctx';

/** What the control API needs of the agent. */
export interface ControlTarget {
  status(): unknown;
  connections: Pick<HeldConnections, 'connect' | 'disconnect'>;
}

export function addControl(server: grpc.Server, target: ControlTarget, base: () => Ctx): void {
  server.addService(api().agent.nsmagent.v1.Agent.service, {
    Status: handle(base, async () => target.status()),
    Connect: handle<{ url: string; netns: string; id: string }, unknown>(base, async (_ctx, req) => {
      const held = await target.connections.connect(req.url, req.netns || 'host', req.id || undefined);
      return {
        connection: held.conn,
        origin: 'agent',
        created: toTimestamp(held.created),
        netns: held.netns,
        interface: held.ifname,
      };
    }),
    Disconnect: handle<{ id: string }, unknown>(base, async (_ctx, req) => {
      await target.connections.disconnect(req.id);
      return {};
    }),
  });
}
