/**
 * roundrobin server (NSM common/roundrobin): picks an endpoint among discover's candidates.
 *
 * A counter per network service name says where to start; each candidate is tried at most
 * once, in turn (the counter advances on every try): network_service_endpoint_name and the
 * client URL (its registered url) are set and the chain goes on. The first success wins. The
 * only candidate failing: its error, code and component kept, with "(endpoint <name>)" after
 * the reason. Several failing: "all candidates have failed: <name>: <reason>; ...", with the
 * failures' code when they all share one, else UNAVAILABLE. A client URL already in the Ctx skips selection.
 *
 * Placement: right after discover.
 */
import type { NetworkServiceEndpoint } from '../../api';
import { AgentError, ErrorCode } from '../../core/errors';
import { NetworkServiceServer, nextServer } from '../../core/networkservice';
import { clientURL, parseClientURL, withClientURL } from '../clienturl';
import { candidates } from '../discover';

function allFailed(failures: { nse: NetworkServiceEndpoint; err: AgentError }[]): AgentError {
  if (failures.length === 1) {
    const { nse, err } = failures[0]!;
    return new AgentError(err.code, `${err.message} (endpoint ${nse.name ?? ''})`, { cause: err, component: err.component });
  }
  const codes = new Set(failures.map((f) => f.err.code));
  const code: ErrorCode = codes.size === 1 ? failures[0]!.err.code : 'UNAVAILABLE';
  const reasons = failures.map((f) => `${f.nse.name ?? ''}: ${f.err.message}`).join('; ');
  return new AgentError(code, `all candidates have failed: ${reasons}`, { cause: failures[failures.length - 1]?.err });
}

export function roundRobinServer(): NetworkServiceServer {
  const counters = new Map<string, number>();
  const pick = (service: string, list: NetworkServiceEndpoint[]): NetworkServiceEndpoint => {
    const n = counters.get(service) ?? 0;
    counters.set(service, n + 1);
    return list[n % list.length]!;
  };

  return {
    async request(ctx, req) {
      if (clientURL(ctx)) return nextServer(ctx).request(ctx, req);
      const found = candidates(ctx);
      if (!found) throw new AgentError('INTERNAL', 'no endpoint candidates in context: add discover before roundrobin');
      const service = found.networkService.name ?? '';
      if (found.endpoints.length === 0) {
        throw new AgentError('NO_CANDIDATES', `network service endpoint candidates not found for ${service}`);
      }
      const failures: { nse: NetworkServiceEndpoint; err: AgentError }[] = [];
      for (let i = 0; i < found.endpoints.length; i++) {
        const nse = pick(service, found.endpoints);
        try {
          const next = withClientURL(ctx, parseClientURL(nse.url ?? ''));
          const conn = { ...(req.connection ?? {}), network_service_endpoint_name: nse.name ?? '' };
          return await nextServer(next).request(next, { ...req, connection: conn });
        } catch (err) {
          const e = AgentError.from(err);
          ctx.log.debug('roundrobin: candidate failed', { endpoint: nse.name, err: e.message });
          failures.push({ nse, err: e });
          if (ctx.signal.aborted) break;
        }
      }
      throw allFailed(failures);
    },
    close: (ctx, conn) => nextServer(ctx).close(ctx, conn),
  };
}
