/**
 * The signal between a trimpath server and the client part of the same chain: the server puts
 * a fresh flag in the Ctx for its downstream; a trimpath client (or any element that reaches a
 * next hop, such as connect) sets it after a successful Request, telling the server that the
 * path goes on past this hop and must not be cut.
 */
import { Ctx, Key } from '../../core/ctx';

export interface NextHopFlag {
  hasNextHop: boolean;
}

const KEY = new Key<NextHopFlag>('trimpath.nextHop');

export function withNextHopFlag(ctx: Ctx, flag: NextHopFlag | undefined): Ctx {
  return ctx.with(KEY, flag);
}

/** Tells the trimpath server of this chain that a next hop answered: keep its segments. */
export function markNextHop(ctx: Ctx): void {
  const flag = ctx.get(KEY);
  if (flag) flag.hasNextHop = true;
}
