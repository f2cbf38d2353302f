/**
 * The Ctx a server chain called in-process should get, as if it were called over gRPC: the
 * caller's chain-scoped state (begin's event factory, connection metadata, the trimpath flag,
 * the chosen client URL and endpoint candidates) is removed, and so are the caller's `next`
 * elements, so the called chain ends in its own tail. Clock, logger, deadline, signal and
 * other values stay.
 *
 * begin and metadata already keep a server chain called from a client chain separate; use this
 * when one chain calls another in-process as a separate hop (a hosted endpoint from connect).
 */
import type { Ctx } from '../../core/ctx';
import { CLIENT, SERVER } from '../../core/networkservice';
import { withEventFactory } from '../begin';
import { withMetadata } from '../metadata';
import { withNextHopFlag } from '../trimpath';
import { withClientURL } from '../clienturl';
import { withCandidates } from '../discover';

export function asNextHop(ctx: Ctx): Ctx {
  let c = withEventFactory(ctx, undefined);
  c = withMetadata(c, undefined);
  c = withNextHopFlag(c, undefined);
  c = withClientURL(c, undefined);
  c = withCandidates(c, undefined);
  return c.with(SERVER.key, undefined).with(CLIENT.key, undefined);
}
