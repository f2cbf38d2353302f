/**
 * A vL3 endpoint's DNS server (./names-dns.ts answers): UDP and TCP port 53 on each of the
 * endpoint's own addresses, opened in the router's namespace by the agent (no process there).
 * Names it does not hold are asked of the service's other endpoints at their own addresses,
 * from the router (reachable over the mesh), every one at once; the first NOERROR wins.
 * A port already taken (a unit that is its own router and runs a DNS server) is logged and
 * left alone.
 */
import type { Logger } from '../../../core/log';
import { openNetns, type Netns } from '../../../sys';
import { serveDns, type ResolverSockets } from '../../dns/listener';
import { RCODE, rcodeOf } from '../../dns/forwarder';
import { UdpUpstream } from '../../dns/upstream';
import { answerMemberQuery, MemberNames } from './names-dns';

/** How long a forwarded query waits for the other endpoints. */
const PEER_TIMEOUT_MS = 1_000;

export interface Vl3DnsOptions {
  /** The members' records (kept by the vl3 server element). */
  names: MemberNames;
  netnsPath: string;
  /** The own addresses of the service's other endpoints (as this endpoint knows them now). */
  peers: () => string[];
  log: Logger;
  /** The port (53; tests may choose another). */
  port?: number;
}

export class Vl3Dns {
  private readonly sockets = new Map<string, ResolverSockets>();
  private ns: Netns | undefined;
  private upstream: UdpUpstream | undefined;
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly o: Vl3DnsOptions) {}

  /** Serves on exactly `addresses` (the endpoint's own, without prefix length). */
  listen(addresses: string[]): Promise<void> {
    this.queue = this.queue.then(() => this.sync(addresses)).catch((err) => this.o.log.warn('vL3 DNS not served', { zone: this.o.names.zone, error: err }));
    return this.queue;
  }

  /** Closes every socket. */
  async close(): Promise<void> {
    await this.listen([]);
    this.upstream?.close();
    this.upstream = undefined;
    this.ns?.close();
    this.ns = undefined;
  }

  /** The answer to one query (exported for tests). */
  answer = (query: Buffer, maxSize = 65_535): Promise<Buffer | undefined> => answerMemberQuery(this.o.names, query, (q) => this.askPeers(q), maxSize);

  private async sync(addresses: string[]): Promise<void> {
    for (const [addr, s] of [...this.sockets]) {
      if (addresses.includes(addr)) continue;
      this.sockets.delete(addr);
      await s.close();
    }
    for (const addr of addresses) {
      if (this.sockets.has(addr)) continue;
      this.ns ??= openNetns(this.o.netnsPath);
      try {
        this.sockets.set(addr, await serveDns(this.ns, addr, this.o.port ?? 53, this.answer, 'vl3'));
        this.o.log.info('vL3 DNS serving', { zone: this.o.names.zone, address: addr });
      } catch (err) {
        this.o.log.warn('vL3 DNS not served on this address', { zone: this.o.names.zone, address: addr, error: err });
      }
    }
  }

  private askPeers(query: Buffer): Promise<Buffer | undefined> {
    const peers = [...new Set(this.o.peers())];
    if (peers.length === 0 || !this.ns) return Promise.resolve(undefined);
    this.upstream ??= new UdpUpstream(this.ns);
    const upstream = this.upstream;
    return new Promise((resolve) => {
      let left = peers.length;
      let done = false;
      const one = () => {
        if (--left === 0 && !done) resolve(undefined);
      };
      for (const peer of peers) {
        upstream.exchange(peer, query, PEER_TIMEOUT_MS).then((got) => {
          if (done) return;
          if (rcodeOf(got) === RCODE.NOERROR) {
            done = true;
            resolve(got);
          } else one();
        }, one);
      }
    });
  }
}
