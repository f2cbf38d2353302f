/**
 * The Ctx a server chain called in-process should get, as if it were called over gRPC: the
 * caller's chain-scoped state (begin's event factory, connection metadata, the trimpath flag,
 * the chosen client URL and endpoint candidates) is removed; clock, logger, deadline, signal
 * and other values stay.
 *
 * begin and metadata already keep a server chain called from a client chain separate; use this
 * when one server chain calls another in-process (a hosted endpoint chain from connect).
 */
import type { Ctx } from '../../core/ctx';
import { withEventFactory } from '../begin';
import { withMetadata } from '../metadata';
import { withNextHopFlag } from '../trimpath';
import { withClientURL } from '../clienturl';
import { withCandidates } from '../discover';

export function asNextHop(ctx: Ctx): Ctx {
  return withCandidates(withClientURL(withNextHopFlag(withMetadata(withEventFactory(ctx, undefined), undefined), undefined), undefined), undefined);
}
