/** vL3 endpoints' prefix leases through the agent's channels (mTLS for tcp://). */
import type { Logger } from '../core/log';
import { AgentError } from '../core/errors';
import type { PrefixSource } from './endpoints/kind';
import type { ChannelPool } from './grpc/dial';

export function leasePrefix(url: string, _opts: { previous: string | undefined; pool: ChannelPool; log: Logger }): PrefixSource {
  throw new AgentError('UNAVAILABLE', `vl3-ipam client not available for ${url}`);
}
