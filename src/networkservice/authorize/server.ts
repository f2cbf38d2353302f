/**
 * authorize server (NSM common/authorize with the nsmgr defaults, plus the agent's service
 * policy). Placement: after updatepath, begin and updatetoken (it reads this hop's own
 * segment, which updatetoken has just signed, and the caller's token that updatetoken put on
 * the previous segment); before anything that acts on the request.
 *
 * Reads Ctx key PEER (src/spire/peer.ts): the caller authenticated by mTLS.
 * - Calls with a PEER (remote hops over TCP): the policies (default SERVER_POLICIES) run on the
 *   left part of the path, segments 0..index; then the service policy admits or refuses the
 *   requesting identity, which is the `sub` of segment 0 (the client that started the path;
 *   the TLS peer's ID when segment 0 carries no token).
 * - Calls without a PEER come from the local unix socket or in-process, where the caller is
 *   authenticated by socket permissions: neither check applies.
 * - Close runs the same policies except tokens_expired: a Close must always be able to tear
 *   down what a Request set up (the timeout element closes connections near expiry).
 * - Every token of the left part must come from a trust domain this agent trusts (its own or a
 *   federated one; `trusts`): a federated peer cannot bring in a path started in a trust domain
 *   this agent was never given a bundle for. Upstream checks only the previous hop's token
 *   against the TLS peer; the stricter rule refuses nothing upstream's own hops send, since
 *   each of them is in a trust domain the next hop trusts.
 * Refusals are PERMISSION_DENIED with a message naming the requester, the TLS peer and this
 * agent, and a warning log line with the same fields.
 */
import type { Connection } from '../../api';
import type { Ctx } from '../../core/ctx';
import { AgentError } from '../../core/errors';
import { NetworkServiceServer, nextServer } from '../../core/networkservice';
import { isSpiffeId, parseSpiffeId } from '../../spire/id';
import { PEER, PeerIdentity } from '../../spire/peer';
import { evaluate, Policy, SERVER_POLICIES, subjectOf, tokensExpired } from './policies';
import { ServicePolicy } from './policy';

export interface AuthorizeServerOptions {
  /** Default SERVER_POLICIES (tokens valid, not expired, chained; previous token signed by the peer). */
  policies?: readonly Policy[];
  /** The agent's `policy` entries, compiled. */
  servicePolicy?: ServicePolicy;
  /** This agent's SPIFFE ID, for messages (e.g. () => source.svid().id). */
  self?: () => string | undefined;
  /** Whether this agent holds a bundle for a trust domain (own or federated); unset: all. */
  trusts?: (trustDomain: string) => boolean;
}

/** The first token of the left part whose subject is in a trust domain not trusted. */
function untrustedToken(tokens: string[], trusts: (td: string) => boolean): string | undefined {
  for (let i = 0; i < tokens.length; i++) {
    const sub = subjectOf(tokens[i]);
    if (!isSpiffeId(sub)) continue; // what the token policies already refuse or leave
    const td = parseSpiffeId(sub).trustDomain;
    if (!trusts(td)) return `the token of path segment ${i} is from ${sub}, of trust domain ${td}, which this agent does not trust (no bundle: not federated)`;
  }
  return undefined;
}

function leftSide(conn: Connection): { index: number; tokens: string[] } {
  const index = conn.path?.index ?? 0;
  const segs = conn.path?.path_segments ?? [];
  return { index, tokens: segs.slice(0, index + 1).map((s) => s.token ?? '') };
}

function selfOf(opts: AuthorizeServerOptions): string {
  try {
    return opts.self?.() ?? 'this agent';
  } catch {
    return 'this agent';
  }
}

function deny(ctx: Ctx, opts: AuthorizeServerOptions, conn: Connection, peer: PeerIdentity, requester: string, reason: string): AgentError {
  const self = selfOf(opts);
  ctx.log.warn('authorize: request refused', { id: conn.id, service: conn.network_service, requester, peer: peer.id, self, reason });
  return new AgentError('PERMISSION_DENIED', `${requester} (via ${peer.id}) refused by ${self}: ${reason}`);
}

export function authorizeServer(opts: AuthorizeServerOptions = {}): NetworkServiceServer {
  const policies = opts.policies ?? SERVER_POLICIES;
  const closePolicies = policies.filter((p) => p !== tokensExpired);

  const check = (ctx: Ctx, conn: Connection, list: readonly Policy[], service: boolean): void => {
    const peer = ctx.get(PEER);
    if (!peer) return; // local caller
    const side = leftSide(conn);
    const requester = subjectOf(side.tokens[0]) || peer.id;
    const why = evaluate(list, { ...side, peer, now: ctx.clock.now() }) ?? (opts.trusts ? untrustedToken(side.tokens, opts.trusts) : undefined);
    if (why !== undefined) throw deny(ctx, opts, conn, peer, requester, why);
    const svc = conn.network_service ?? '';
    if (service && opts.servicePolicy && !opts.servicePolicy.allows(svc, requester)) {
      throw deny(ctx, opts, conn, peer, requester, `the agent policy does not allow it to connect to network service ${svc}`);
    }
  };

  return {
    async request(ctx, req) {
      check(ctx, req.connection ?? {}, policies, true);
      return nextServer(ctx).request(ctx, req);
    },
    async close(ctx, conn) {
      check(ctx, conn, closePolicies, false);
      return nextServer(ctx).close(ctx, conn);
    },
  };
}
