/**
 * The vL3 endpoint: one L3 network across hosts for a network service, as upstream NSM's vL3
 * endpoints make it, with a kernel router (./router.ts) in place of VPP. It leases a prefix
 * from each vl3-ipam server (one per address family), gives each client one address of it
 * (./server.ts), and meshes with the service's other vL3 endpoints (./mesh.ts). Clients
 * connect to it as to any endpoint; their vWires end in the router. It names its members in
 * DNS on its own addresses (./dns-server.ts), and asks its peers for the names of theirs.
 */
import { kernelEndpointServer } from '../../../mechanisms/kernel/endpoint';
import { AgentError } from '../../../core/errors';
import { stateName, type NetworkServiceEndpoint, type Route } from '../../../api';
import type { EndpointKind, PrefixSource } from '../kind';
import { Vl3Dns } from './dns-server';
import { Vl3Mesh } from './mesh';
import { MemberNames } from './names-dns';
import { Vl3Pool } from './pool';
import { Router } from './router';
import { vl3Server } from './server';

/** How long an endpoint's start waits for its first lease before it registers anyway. */
const FIRST_LEASE_WAIT_MS = 2_000;

/** How long a vL3 record outlives its last write when nothing claims it (the endpoint is gone). */
const RECORD_LIFETIME_MS = 24 * 3600_000;

export const vl3Endpoint: EndpointKind = (cfg, env) => {
  const vl3 = cfg.vl3;
  if (!vl3 || vl3.ipam.length === 0) throw new AgentError('INVALID_ARGUMENT', `endpoint ${cfg.name}: vl3.ipam must name at least one vl3-ipam server`);
  const log = env.log.with({ endpoint: cfg.name });
  const pools = vl3.ipam.map(() => new Vl3Pool());
  const leases: PrefixSource[] = [];
  let router: Router | undefined;
  let registration: NetworkServiceEndpoint | undefined;
  let meshing = false;
  const service = cfg.services[0]!;
  const mesh = new Vl3Mesh({
    self: cfg.name,
    service,
    netnsPath: env.netnsPath,
    nse: env.nse,
    held: env.held,
    context: () => ({
      ip_context: {
        src_ip_addrs: pools.map((p) => p.self!),
        dst_routes: pools.flatMap((p): Route[] => [
          { prefix: p.self!, nextHop: p.selfIp! },
          { prefix: p.prefix!, nextHop: p.selfIp! },
        ]),
      },
    }),
    ctx: env.ctx,
    log,
  });
  const ready = () => pools.every((p) => p.initialized);
  const startMesh = () => {
    if (!registration || !ready()) return;
    meshing = true;
    mesh.start(registration);
  };
  const record = () =>
    env.vl3Records.put(cfg.name, { expires: Date.now() + RECORD_LIFETIME_MS, prefixes: pools.map((p) => p.prefix ?? '') });

  /** The prefix handling in progress (router addresses, mesh), in order. */
  let settled: Promise<void> = Promise.resolve();
  const onPrefix = async (i: number, prefix: string, excluded: string[]) => {
    const pool = pools[i]!;
    let changed: boolean;
    try {
      const family = prefix.includes(':') ? 6 : 4;
      const twin = pools.findIndex((p, j) => j !== i && p.family === family);
      if (twin >= 0) {
        throw new AgentError('INVALID_ARGUMENT', `${vl3.ipam[i]} and ${vl3.ipam[twin]} both lease IPv${family} prefixes: name one server per address family`);
      }
      changed = pool.reset(prefix, excluded);
    } catch (err) {
      log.error('vL3 prefix refused', { ipam: vl3.ipam[i], prefix, error: err });
      return;
    }
    if (!changed) return;
    log.info('vL3 prefix leased', { ipam: vl3.ipam[i], prefix: pool.prefix, address: pool.self });
    await router?.setAddresses(pools.filter((p) => p.initialized).map((p) => p.self!)).catch((err) => log.error('vL3 router addresses not set', { error: err }));
    await dns?.listen(ownIps());
    record();
    if (meshing) await mesh.renew();
    else startMesh();
  };

  /** Own addresses of the peers this endpoint connects to, by connection id (from their answers). */
  const peersAsked = new Map<string, string[]>();
  let dns: Vl3Dns | undefined;
  const names = new MemberNames(service, () => pools.filter((p) => p.initialized).map((p) => p.global!));
  const ownIps = () => pools.filter((p) => p.initialized).map((p) => p.selfIp!);
  const server = vl3Server(pools, {
    mtu: env.meshMtu,
    refresh: env.requestRefresh,
    dnsConfig: () => (ready() ? { dns_server_ips: ownIps(), search_domains: [service] } : undefined),
    names,
  });
  /** Stops following the peer connections' answers. */
  let unfollow: (() => void) | undefined;

  return {
    elements: [server, kernelEndpointServer({ netns: env.netnsPath, ifname: cfg.interface })],
    connectionCount: () => Math.max(0, ...pools.map((p) => p.size)),
    release: () => {},

    async start() {
      router = await Router.open(cfg.name, vl3.ownNetns ? undefined : cfg.netns, log);
      dns = new Vl3Dns({
        names,
        netnsPath: router.netnsPath,
        log,
        peers: () => [
          ...server.peerAddresses(),
          ...[...peersAsked].filter(([id]) => mesh.isPeerConnection(id)).flatMap(([, addrs]) => addrs),
        ],
      });
      // A peer's answer with a lower MTU (its host's path is narrower) lowers this endpoint's;
      // its own addresses (dst) are where names of its members are asked.
      unfollow = env.connectionUpdates?.((conn) => {
        const id = conn.path?.path_segments?.[0]?.id ?? '';
        if (stateName(conn.state) !== 'UP' || !mesh.isPeerConnection(id)) return;
        const mtu = conn.context?.MTU;
        if (mtu) server.lower(mtu);
        const addrs = conn.context?.ip_context?.dst_ip_addrs ?? [];
        if (addrs.length) peersAsked.set(id, addrs.map((a) => a.replace(/\/\d+$/, '')));
      });
      const previous = env.vl3Records.claim(cfg.name);
      // After a restart, the prefixes held before serve at once (the clients' vWires are taken
      // back, not torn down while the lease is renewed); a lease that comes back different
      // replaces them, and strict addressing moves the clients over.
      previous?.prefixes.forEach((prefix, i) => {
        if (!prefix || !pools[i]) return;
        try {
          pools[i]!.reset(prefix);
        } catch {
          /* not a prefix: lease afresh */
        }
      });
      if (pools.some((p) => p.initialized)) {
        await router.setAddresses(pools.filter((p) => p.initialized).map((p) => p.self!));
        await dns.listen(ownIps());
      }
      vl3.ipam.forEach((url, i) => {
        const lease = env.leasePrefix(url, previous?.prefixes[i] || undefined);
        leases.push(lease);
        lease.onPrefix((prefix, excluded) => {
          settled = settled.then(() => onPrefix(i, prefix, excluded));
        });
      });
      // Registered with its first lease, when the server answers soon, so that the first
      // clients are served; a server that is down does not hold the agent up (requests fail
      // UNAVAILABLE until the lease comes).
      if (!ready()) {
        const wait = AbortSignal.timeout(FIRST_LEASE_WAIT_MS);
        await Promise.all(leases.map((l) => l.ready(wait))).catch(() => {});
        await settled;
      }
    },

    registered(reg) {
      registration = reg;
      startMesh();
    },

    async stop(opts) {
      unfollow?.();
      unfollow = undefined;
      await dns?.close();
      dns = undefined;
      await mesh.stop({ disconnect: opts.cleanup });
      for (const lease of leases.splice(0)) lease.close();
      if (opts.cleanup) {
        await router?.remove();
        env.vl3Records.delete(cfg.name);
      }
    },

    status: () => ({
      prefixes: pools.map((p) => p.prefix ?? ''),
      addresses: pools.map((p) => p.self ?? ''),
      members: Math.max(0, ...pools.map((p) => p.size)),
      peers: mesh.peerNames(),
      names: [...names.list().keys()].sort(),
    }),
  };
};
