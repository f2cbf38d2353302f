/**
 * The local vWire: one veth pair straight between the client's and the endpoint's namespaces,
 * each end named as requested, with MTU, addresses, routes and (payload IP) permanent
 * neighbours from the IP context, as NSM's connectioncontextkernel does on each side.
 * Packets never pass through the agent. Creation is all-or-nothing: a failure half-way
 * deletes the pair (deleting one end removes both, with their addresses and routes).
 */
import type { IPContext } from '../../api';
import * as sys from '../../sys';
import { AgentError } from '../../core/errors';
import { parsePrefix, contains, parseIp, parseNetwork, formatPrefix } from '../../networkservice/ipam/cidr';

export interface VethSide {
  netns: sys.Netns;
  ifname: string;
}

export interface SideConfig {
  /** Addresses for this end (CIDR). */
  addrs: string[];
  /** Addresses of the other end (CIDR); reached on-link. */
  peers: string[];
  /** Routes in this namespace; an empty nextHop means the first peer address of the family. */
  routes: { prefix?: string; nextHop?: string }[];
  /**
   * A bridge in this namespace that the end joins as a port (a passthrough endpoint's side):
   * the end is set up and enslaved, and gets none of the addresses, routes or neighbours above,
   * which belong to the chain's first client and last endpoint.
   */
  bridge?: string;
}

/** `side` as a port of `bridge` when one is given. */
export function withBridge(side: SideConfig, bridge: string | undefined): SideConfig {
  return bridge ? { ...side, bridge } : side;
}

/** The two sides' configuration from an IP context, NSC (client) side first. */
export function sidesOf(ipc: IPContext | null | undefined): { client: SideConfig; endpoint: SideConfig } {
  const src = ipc?.src_ip_addrs ?? [];
  const dst = ipc?.dst_ip_addrs ?? [];
  return {
    client: { addrs: src, peers: dst, routes: ipc?.src_routes ?? [] },
    endpoint: { addrs: dst, peers: src, routes: ipc?.dst_routes ?? [] },
  };
}

function ipOf(cidr: string): string {
  return cidr.split('/')[0] ?? '';
}

function familyOf(ip: string): 4 | 6 {
  return ip.includes(':') ? 6 : 4;
}

/** Random locally administered unicast MAC, so neighbours can be set without asking the kernel. */
function randomMac(): string {
  const hex = (x: number) => x.toString(16).padStart(2, '0');
  let mac = hex((Math.floor(Math.random() * 256) & 0xfe) | 0x02);
  for (let i = 1; i < 6; i++) mac += `:${hex(Math.floor(Math.random() * 256))}`;
  return mac;
}

/**
 * One side's addresses, on-link routes to the peer addresses, the IP context's routes and,
 * when `peerMac` is given, permanent neighbours for the peers (payload IP over an L2 link:
 * no ARP needed). Used for both veth ends and for the local end of a tunnel.
 *
 * All of it goes to the kernel in one send: rtnetlink handles the requests in order and none
 * of them needs an earlier one's answer (routes and neighbours name the link by ifindex, not
 * by an address), so waiting for the addresses before sending the routes would only add round
 * trips. Fails with the first request's error; the others were
 * still made (the caller removes the link).
 */
export async function configureSide(side: VethSide, index: number, cfg: SideConfig, peerMac?: string): Promise<void> {
  const failure = configureSideNow(side, index, cfg, peerMac, false);
  await loopTurn();
  if (failure) throw failure.error;
}

/** Lets the event loop turn: what an Rtnl promise does before its caller goes on (see rtnl.ts). */
const loopTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * configureSide's work (plus SETLINK up first when `up`), sent at once: returns the first
 * failure ({ error }), or undefined. Never throws.
 */
function configureSideNow(side: VethSide, index: number, cfg: SideConfig, peerMac: string | undefined, up: boolean): { error: unknown } | undefined {
  try {
    const answers = sys.Rtnl.for(side.netns).transactNow(sideRequests(side, index, cfg, peerMac, up));
    const failed = answers.find((a) => a.payloads === undefined);
    return failed && { error: failed.error };
  } catch (error) {
    return { error };
  }
}

/**
 * The requests of one side, in order. IPv6 addresses need IPv6 on in the namespace for the
 * link first: that sysctl is written here, before the requests are sent.
 */
function sideRequests(side: VethSide, index: number, cfg: SideConfig, peerMac: string | undefined, up: boolean): sys.RtnlRequest[] {
  if (cfg.bridge) return [sys.setMasterUpRequest(index, bridgeIndex(side.netns, cfg.bridge))];
  const own = cfg.addrs.map((a) => parsePrefix(a)).filter((p) => !!p);
  const reqs: sys.RtnlRequest[] = [];
  if (cfg.addrs.some((a) => familyOf(ipOf(a)) === 6)) {
    sys.setSysctl(side.netns, `net.ipv6.conf.${side.ifname}.disable_ipv6`, '0');
  }
  if (up) reqs.push(sys.setLinkUpRequest(index, true));
  for (const a of cfg.addrs) reqs.push(sys.addAddressRequest(index, a, { noDad: familyOf(ipOf(a)) === 6 }));
  const linked = new Set<string>();
  for (const peer of cfg.peers) {
    const ip = parseIp(ipOf(peer));
    if (!ip) continue;
    if (own.some((p) => contains(p, ip.family, ip.value))) continue;
    const host = `${ipOf(peer)}/${ip.family === 4 ? 32 : 128}`;
    linked.add(host);
    reqs.push(sys.replaceRouteRequest({ dst: host, index, scope: 'link' }));
  }
  for (const r of cfg.routes) {
    if (!r.prefix || linked.has(r.prefix)) continue;
    const fam = familyOf(ipOf(r.prefix));
    const via = r.nextHop || cfg.peers.map(ipOf).find((p) => familyOf(p) === fam);
    if (!via) continue;
    // Prefixes may come with host bits (upstream's vl3 sends 172.16.1.0/16): the kernel wants them masked.
    const net = parseNetwork(r.prefix);
    reqs.push(sys.replaceRouteRequest({ dst: net ? formatPrefix(net) : r.prefix, index, via, onlink: true }));
  }
  if (peerMac) {
    for (const peer of cfg.peers) reqs.push(sys.replaceNeighborRequest({ index, ip: ipOf(peer), mac: peerMac, permanent: true }));
  }
  return reqs;
}

/** The ifindex of the bridge `name` in `netns`; NOT_FOUND when it is not there. */
function bridgeIndex(netns: sys.Netns, name: string): number {
  const [answer] = sys.Rtnl.for(netns).transactNow([sys.getLinkRequest(name)]);
  const link = answer ? sys.linkOf(answer) : undefined;
  if (!link) throw new AgentError('NOT_FOUND', `bridge ${name} is not in network namespace ${netns.path}`);
  return link.index;
}

export interface VethPair {
  client: VethSide;
  endpoint: VethSide;
}

/**
 * Creates and configures the pair. Throws AgentError; nothing is left behind on failure.
 * Both ends must not exist yet (an existing name fails with ALREADY_EXISTS).
 *
 * The same kernel work as a raw-netlink program would do: the NEWLINK with
 * both ends and the read-back of their ifindexes; then, per side in one send, the endpoint
 * end's SETLINK up (a veth peer cannot be created up) with the addresses, routes and neighbours.
 * All of it in one stretch of synchronous code (Rtnl.transactNow), each answer read as soon as
 * its send returns, and one event-loop turn at the end, so that concurrent connects take turns
 * per vWire instead of paying for several turns and the promise hops between them.
 */
export async function createVethPair(
  pair: VethPair,
  ipc: IPContext | null | undefined,
  opts: { mtu?: number; payloadIp: boolean; bridges?: { client?: string | undefined; endpoint?: string | undefined } },
): Promise<void> {
  // Sent from the client's namespace, with the client end's read-back in the same send (the
  // socket is needed there anyway, and one send fewer is one syscall fewer on the connect path).
  const macs = { client: randomMac(), endpoint: randomMac() };
  let created: { a: sys.LinkInfo; b: sys.LinkInfo };
  try {
    created = sys.createVethPairNow(
      sys.Rtnl.for(pair.client.netns),
      { name: pair.client.ifname, ns: pair.client.netns, mtu: opts.mtu || undefined, mac: macs.client, up: true },
      { name: pair.endpoint.ifname, ns: pair.endpoint.netns, mtu: opts.mtu || undefined, mac: macs.endpoint },
    );
  } catch (err) {
    await loopTurn();
    const code = (err as { code?: string }).code;
    if (code === 'EEXIST') {
      throw new AgentError('ALREADY_EXISTS', `interface ${pair.client.ifname} or ${pair.endpoint.ifname} already exists`, { cause: err });
    }
    // Made but not read back (an end vanished, a socket failed): whatever is left goes.
    if (code !== 'EINVAL') await deleteVethEnd(pair.client).catch(() => {});
    throw AgentError.wrap(err, 'create veth pair', 'DATAPLANE');
  }
  const plain = sidesOf(ipc);
  const sides = { client: withBridge(plain.client, opts.bridges?.client), endpoint: withBridge(plain.endpoint, opts.bridges?.endpoint) };
  // Behind a bridge port the peer is further away than the other end of this pair: its
  // neighbour is found by ARP, not set to this pair's MAC.
  const staticNeighbours = opts.payloadIp && !sides.client.bridge && !sides.endpoint.bridge;
  const failure =
    configureSideNow(pair.client, created.a.index, sides.client, staticNeighbours ? macs.endpoint : undefined, false) ??
    configureSideNow(pair.endpoint, created.b.index, sides.endpoint, staticNeighbours ? macs.client : undefined, true);
  await loopTurn();
  if (failure) {
    await deleteVethEnd(pair.client).catch(() => {});
    throw AgentError.wrap(failure.error, `configure veth ${pair.client.ifname}`, 'DATAPLANE');
  }
}

/** Deletes the pair through one of its ends; a missing end (or namespace) is not an error. */
export async function deleteVethEnd(side: VethSide): Promise<boolean> {
  const rtnl = sys.Rtnl.for(side.netns);
  const link = await sys.getLink(rtnl, side.ifname);
  if (!link) return false;
  await sys.deleteLink(rtnl, link.index);
  return true;
}

/** Sets the MTU of both ends of the pair where it differs; a missing end is skipped. */
export async function setVethMtu(pair: VethPair, mtu: number): Promise<void> {
  for (const side of [pair.client, pair.endpoint]) {
    const rtnl = sys.Rtnl.for(side.netns);
    const link = await sys.getLink(rtnl, side.ifname);
    if (link && link.mtu !== mtu) await sys.setMtu(rtnl, link.index, mtu);
  }
}

/** True if the client end still exists. */
export async function vethExists(side: VethSide): Promise<boolean> {
  return !!(await sys.getLink(sys.Rtnl.for(side.netns), side.ifname));
}

/**
 * Opens the namespace at `path`. Missing (or an unmounted leftover under /run/netns):
 * NETNS_NOT_FOUND; a file that is not a namespace, or a malformed name: INVALID_ARGUMENT; both
 * are the requester's. With `endpoint`, the namespace is that hosted endpoint's, a fault of the
 * agent's configuration and not of the client: FAILED_PRECONDITION naming the endpoint.
 */
export function requireNetns(path: string, endpoint?: string): sys.Netns {
  try {
    return sys.openNetns(path);
  } catch (err) {
    const e = err as { code?: string; syscall?: string };
    const whose = endpoint !== undefined ? `endpoint ${endpoint}'s network namespace` : 'network namespace';
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR' || (e.code === 'EINVAL' && path.startsWith('/run/netns/'))) {
      if (endpoint !== undefined) throw new AgentError('FAILED_PRECONDITION', `${whose} ${path} does not exist`, { cause: err });
      throw new AgentError('NETNS_NOT_FOUND', `network namespace ${path} does not exist`, { cause: err });
    }
    if (e.code === 'EINVAL') {
      const reason = e.syscall === 'netns' ? `: ${(err as Error).message.replace(/^EINVAL: [^,]*, netns '[^']*': /, '')}` : ' is not a network namespace';
      throw new AgentError(endpoint !== undefined ? 'FAILED_PRECONDITION' : 'INVALID_ARGUMENT', `${path}${reason}`, { cause: err });
    }
    throw AgentError.wrap(err, `open ${whose} ${path}`, 'DATAPLANE');
  }
}

/** Runs `fn` with the namespace at `path` open (NETNS_NOT_FOUND if it is gone), then closes it. */
export async function inNetns<T>(path: string, fn: (ns: sys.Netns) => Promise<T>): Promise<T> {
  const ns = requireNetns(path);
  try {
    return await fn(ns);
  } finally {
    ns.close();
  }
}

