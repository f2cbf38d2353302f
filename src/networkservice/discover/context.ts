/** The endpoints discover found for the requested service, for roundrobin (NSM discover.Candidates). */
import type { NetworkService, NetworkServiceEndpoint } from '../../api';
import { Ctx, Key } from '../../core/ctx';

export interface Candidates {
  networkService: NetworkService;
  endpoints: NetworkServiceEndpoint[];
}

const KEY = new Key<Candidates>('discover.candidates');

export function withCandidates(ctx: Ctx, c: Candidates | undefined): Ctx {
  return ctx.with(KEY, c);
}

export function candidates(ctx: Ctx): Candidates | undefined {
  return ctx.get(KEY);
}
