/**
 * The vl3-ipam server: ipam.IPAM/ManagePrefixes, with the semantics of upstream NSM sdk's
 * vl3ipam server. Each stream is one client's lease:
 *
 * - ALLOCATE takes a prefix from the pool minus the request's exclude_prefixes (the requested
 *   prefix when it is free, which is how an endpoint gets its previous one back after a
 *   reconnect; else a new /clientPrefixLength) and answers it with the request's
 *   exclude_prefixes echoed. A stream may hold several prefixes.
 * - DELETE frees the prefix if this stream holds it, and answers nothing.
 * - UNDEFINED (or an unknown type) ends the stream with INVALID_ARGUMENT; a pool with nothing
 *   free ends it with RESOURCE_EXHAUSTED (POOL_EXHAUSTED). Both statuses end the lease, as a
 *   gRPC stream carries one status, at its end.
 * - However the stream ends (the client half-closes or cancels, the connection drops, an
 *   error), every prefix it holds goes back to the pool.
 */
import type * as grpc from '@grpc/grpc-js';
import { api, type PrefixRequest__Output, type PrefixResponse } from '../../api';
import { AgentError } from '../../core/errors';
import { silentLogger, type Logger } from '../../core/log';
import { peerFromCall } from '../../spire';
import { formatPrefix, parseNetwork } from '../../networkservice/ipam/cidr';
import { PrefixPool } from './pool';

export interface Vl3IpamServerOptions {
  /** The whole network, e.g. 172.16.0.0/16 or 2001:db8::/64. */
  prefix: string;
  /** The length of each endpoint's prefix, e.g. 24 (or 112 for IPv6). */
  clientPrefixLength: number;
  log?: Logger;
}

type Stream = grpc.ServerDuplexStream<PrefixRequest__Output, PrefixResponse>;

export class Vl3IpamServer {
  readonly pool: PrefixPool;
  private readonly log: Logger;
  private open = 0;
  /** The last ALLOCATE found the pool full: further refusals are logged at debug only. */
  private exhausted = false;

  /** Throws INVALID_ARGUMENT for a prefix or client length that does not make a pool. */
  constructor(opts: Vl3IpamServerOptions) {
    this.pool = new PrefixPool(opts.prefix, opts.clientPrefixLength);
    this.log = (opts.log ?? silentLogger).with({ component: 'vl3-ipam' });
  }

  /** The ManagePrefixes streams open now. */
  get streams(): number {
    return this.open;
  }

  /** Adds ipam.IPAM to a grpc-js server. */
  addTo(server: grpc.Server): void {
    server.addService(api().ipam.ipam.IPAM.service, { ManagePrefixes: (call: Stream) => this.manage(call) });
  }

  private manage(call: Stream): void {
    const owned: string[] = [];
    const log = this.log.with({ peer: peerFromCall(call)?.id ?? call.getPeer() });
    let done = false;
    this.open++;
    const release = (why: string) => {
      if (done) return false;
      done = true;
      this.open--;
      for (const p of owned) this.pool.free(p);
      if (owned.length) log.info('prefixes released', { prefixes: owned.join(','), why });
      owned.length = 0;
      return true;
    };
    const fail = (err: unknown) => {
      const e = AgentError.from(err);
      if (release(e.message)) call.emit('error', { code: e.grpcStatus, details: e.message });
    };

    call.on('data', (req: PrefixRequest__Output) => {
      if (done) return;
      switch (req.type) {
        case 'ALLOCATE': {
          let prefix: string;
          try {
            prefix = this.pool.allocate(req.prefix, req.exclude_prefixes);
          } catch (err) {
            const full = err instanceof AgentError && err.code === 'POOL_EXHAUSTED';
            // Endpoints retry a full pool with back-off: say it once per episode, not per retry.
            if (full && this.exhausted) log.debug('allocation refused', { requested: req.prefix, error: err });
            else if (full) log.warn('prefix pool exhausted; allocation refused', { requested: req.prefix, error: err });
            else log.info('allocation refused', { requested: req.prefix, error: err });
            this.exhausted ||= full;
            return fail(err);
          }
          this.exhausted = false;
          owned.push(prefix);
          log.info('prefix allocated', { prefix, requested: req.prefix || undefined });
          call.write({ prefix, exclude_prefixes: req.exclude_prefixes });
          return;
        }
        case 'DELETE': {
          const i = owned.findIndex((p) => sameNetwork(p, req.prefix));
          if (i < 0) return;
          const [prefix] = owned.splice(i, 1) as [string];
          this.pool.free(prefix);
          log.info('prefix deleted', { prefix });
          return;
        }
        default:
          return fail(new AgentError('INVALID_ARGUMENT', `vl3-ipam: PrefixRequest.type is ${String(req.type)}; want ALLOCATE or DELETE`));
      }
    });
    call.on('end', () => {
      if (release('stream closed by the client')) call.end();
    });
    call.on('cancelled', () => release('stream cancelled'));
    call.on('error', () => release('stream failed'));
    call.on('close', () => release('stream closed'));
  }
}

/** Whether two texts name the same network (host bits ignored); false if either is not a prefix. */
function sameNetwork(a: string, b: string): boolean {
  const pa = parseNetwork(a);
  const pb = parseNetwork(b);
  return !!pa && !!pb && formatPrefix(pa) === formatPrefix(pb);
}
