/**
 * The passthrough endpoint (agent.yaml `passthrough: true`, a unit's Passthrough=): an element
 * of a composed service that assigns no addresses. Each connection requests the same service
 * again with the endpoint's labels (src/networkservice/passthrough), and both of its sides
 * join one bridge in `netns`, where the endpoint's own program may filter what crosses.
 */
import { AgentError } from '../../../core/errors';
import { bridgeJoint } from '../../../mechanisms/kernel/bridge';
import { passthroughServer } from '../../../networkservice/passthrough';
import type { EndpointKind } from '../kind';

export const passthroughEndpoint: EndpointKind = (cfg, env) => {
  const next = env.next;
  if (!next) throw new AgentError('INTERNAL', `endpoint ${cfg.name}: a passthrough endpoint needs the agent's server chain`);
  const joint = bridgeJoint(env.netnsPath);
  const server = passthroughServer({
    endpoint: cfg.name,
    labels: cfg.labels,
    netns: env.netnsPath,
    next: { request: (ctx, req) => next(cfg.name).request(ctx, req), close: (ctx, conn) => next(cfg.name).close(ctx, conn) },
    joint,
    ...(env.passthroughRecords ? { records: env.passthroughRecords } : {}),
  });
  let unsubscribe: (() => void) | undefined;
  return {
    elements: [server],
    // The kernel hooks an nftables `bridge` table into the bridges of a namespace only if a
    // bridge existed there when the table was loaded: one made and removed here lets the
    // endpoint's program load its rules any time after the endpoint is hosted.
    async start() {
      try {
        await joint.close(await joint.open());
      } catch (err) {
        env.log.warn('passthrough endpoint: namespace not prepared for bridge filters', { endpoint: cfg.name, netns: env.netnsPath, error: err });
      }
      // The downstream connection has no heal of its own: when its next hop reports it down,
      // the client of the connection it serves is asked to refresh, which requests it again
      // (same next hop), as a heal does.
      unsubscribe = env.connectionUpdates?.((conn) => {
        if (conn.state !== 'DOWN') return;
        const up = server.servedThrough(conn);
        if (up) env.requestRefresh?.(up);
      });
    },
    async stop() {
      unsubscribe?.();
      unsubscribe = undefined;
    },
    connectionCount: () => server.size(),
    release: () => {},
  };
};
