/**
 * authorize for the registry (NSM registry/common/authorize with the nsmgr registry server
 * defaults: common + registry + server policies). Placement: first in the NS and NSE registry
 * server chains that serve remote callers (after a registry updatepath, if the chain has one).
 *
 * Reads Ctx keys PEER (src/spire/peer.ts, the caller authenticated by mTLS) and REGISTRY_PATH
 * (src/registry/path.ts, the `path` header).
 *
 * Register and Unregister:
 * 1. With a PEER and a path with tokens, the token policies (default tokens valid, not expired,
 *    chained, the caller's token signed by the TLS peer) run on segments 0..k, where k is the
 *    caller's segment: path.Index, or Index−1 when the segment at Index already carries this
 *    registry's own token (a registry updatepath ran before this element).
 * 2. Ownership (registry/client_allowed): the registrant is the `sub` of segment 0's token
 *    (the original registrant, not verified beyond step 1), else the TLS peer's ID, else (a
 *    local caller: unix socket or in-process) this agent's own ID. A name may be registered if
 *    nobody owns it, and refreshed or unregistered only by its owner. The first successful
 *    Register records the owner; a successful Unregister forgets it; so does `forgetAfterMs`
 *    without a Register of that name (set it to the registration expiry, so that an expired
 *    entry's name can be taken by someone else). A network service registered bare (no
 *    matches, no metadata: what an endpoint host registers for the services its endpoints
 *    provide) holds no one's configuration: anyone the policies let through may register it
 *    again with matches or metadata (not bare), and becomes its owner (the operator's manifest applied after the
 *    endpoints came up). Unregistering it stays its owner's.
 * Find is not checked. Refusals are PERMISSION_DENIED naming both identities, and logged.
 */
import type { Ctx } from '../../core/ctx';
import { AgentError } from '../../core/errors';
import { NseRegistry, NsRegistry, nextNsRegistry, nextNseRegistry } from '../../core/registry';
import { evaluate, Policy, subjectOf, tokensChained, tokensExpired, tokensValid, prevTokenSigned } from '../../networkservice/authorize/policies';
import { PEER } from '../../spire/peer';
import { REGISTRY_PATH } from '../path';

/** Default registry server policies (the ownership check is always on). */
export const REGISTRY_SERVER_POLICIES: readonly Policy[] = [tokensValid, tokensExpired, tokensChained, prevTokenSigned];

export interface RegistryAuthorizeOptions {
  policies?: readonly Policy[];
  /** This agent's SPIFFE ID: the owner for local callers, and used to find the caller's segment. */
  self?: () => string | undefined;
  /** Forget an owner after this long without a Register of the name (ms); default never. */
  forgetAfterMs?: number;
}

interface Owner {
  id: string;
  /** Clock ms of the last successful Register. */
  seen: number;
  /** Registered bare (a network service without matches or metadata): another may configure it. */
  bare: boolean;
}

/** The ownership table and checks shared by the NS and NSE elements. */
class Authorizer {
  private readonly owners = new Map<string, Owner>();
  private readonly policies: readonly Policy[];

  constructor(
    private readonly kind: 'network service' | 'network service endpoint',
    private readonly opts: RegistryAuthorizeOptions,
  ) {
    this.policies = opts.policies ?? REGISTRY_SERVER_POLICIES;
  }

  private self(): string {
    try {
      return this.opts.self?.() ?? '';
    } catch {
      return '';
    }
  }

  /** Checks the call; returns the identity that acts. Throws PERMISSION_DENIED. */
  check(ctx: Ctx, name: string, action: 'register' | 'unregister', configures = false): string {
    const peer = ctx.get(PEER);
    const path = ctx.get(REGISTRY_PATH);
    const tokens = (path?.PathSegments ?? []).map((s) => s.token ?? '');
    const self = this.self();
    let requester = subjectOf(tokens[0]) || peer?.id || self || 'local';
    if (peer && tokens.length) {
      let k = Math.min(path?.Index ?? 0, tokens.length - 1);
      if (k > 0 && self && subjectOf(tokens[k]) === self) k--;
      const why = evaluate(this.policies, { index: k + 1, tokens: tokens.slice(0, k + 1), peer, now: ctx.clock.now() });
      if (why !== undefined) throw this.deny(ctx, name, action, requester, peer.id, why);
    } else if (peer) {
      requester = peer.id; // no path header: the TLS identity is all there is
    }
    const owner = this.owner(ctx, name);
    if (owner && owner.id !== requester && !(owner.bare && configures && action === 'register')) {
      throw this.deny(ctx, name, action, requester, peer?.id ?? 'local', `${this.kind} ${name} belongs to ${owner.id}`);
    }
    return requester;
  }

  private owner(ctx: Ctx, name: string): Owner | undefined {
    const o = this.owners.get(name);
    if (o && this.opts.forgetAfterMs !== undefined && ctx.clock.now() - o.seen > this.opts.forgetAfterMs) {
      this.owners.delete(name);
      return undefined;
    }
    return o;
  }

  registered(ctx: Ctx, name: string, id: string, bare: boolean): void {
    this.owners.set(name, { id, seen: ctx.clock.now(), bare: this.kind === 'network service' && bare });
  }

  unregistered(name: string): void {
    this.owners.delete(name);
  }

  private deny(ctx: Ctx, name: string, action: string, requester: string, peer: string, reason: string): AgentError {
    const self = this.self() || 'this registry';
    ctx.log.warn('authorize: registry call refused', { kind: this.kind, name, action, requester, peer, self, reason });
    return new AgentError('PERMISSION_DENIED', `${action} of ${this.kind} ${name} by ${requester} refused by ${self}: ${reason}`);
  }
}

/** The registry API of one kind of record (NsRegistry and NseRegistry have this shape). */
interface RecordRegistry<R extends { name?: string }, Q, A> {
  register(ctx: Ctx, r: R): Promise<R>;
  find(ctx: Ctx, q: Q): AsyncIterable<A>;
  unregister(ctx: Ctx, r: R): Promise<void>;
}

/** The element for either kind: checks Register and Unregister, records owners, passes Find. */
function authorizing<R extends { name?: string }, Q, A>(auth: Authorizer, next: (ctx: Ctx) => RecordRegistry<R, Q, A>): RecordRegistry<R, Q, A> {
  return {
    async register(ctx, r) {
      const name = r.name ?? '';
      const bare = !(r as { matches?: unknown[] }).matches?.length && !(r as { metadata?: unknown }).metadata;
      const id = auth.check(ctx, name, 'register', !bare);
      const out = await next(ctx).register(ctx, r);
      auth.registered(ctx, out.name || name, id, bare);
      return out;
    },
    find: (ctx, q) => next(ctx).find(ctx, q),
    async unregister(ctx, r) {
      const name = r.name ?? '';
      auth.check(ctx, name, 'unregister');
      await next(ctx).unregister(ctx, r);
      auth.unregistered(name);
    },
  };
}

export function authorizeNseRegistry(opts: RegistryAuthorizeOptions = {}): NseRegistry {
  return authorizing(new Authorizer('network service endpoint', opts), nextNseRegistry);
}

export function authorizeNsRegistry(opts: RegistryAuthorizeOptions = {}): NsRegistry {
  return authorizing(new Authorizer('network service', opts), nextNsRegistry);
}
