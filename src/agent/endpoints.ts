/**
 * Endpoints hosted by the agent (agent.yaml `endpoints:`): each is an in-process endpoint
 * chain (updatepath → updatetoken → ipam → KERNEL endpoint side → trimpath) and a
 * registration in the registry (its network services, labels with nodeName, and the agent's
 * URL), refreshed while the agent runs and removed when it stops.
 */
import type { NetworkServiceEndpoint } from '../api';
import { Ctx } from '../core/ctx';
import { NetworkServiceServer, chainServer } from '../core/networkservice';
import { NsRegistry, NseRegistry, findAll } from '../core/registry';
import { AddressPool } from '../networkservice/ipam/pool';
import { parsePrefix } from '../networkservice/ipam/cidr';
import { ipamServer, type IpamRecord } from '../networkservice/ipam/server';
import type { Records } from '../core/records';
import { updatePathServer } from '../networkservice/updatepath';
import { updateTokenServer } from '../networkservice/updatetoken';
import type { TokenSource } from '../core/token';
import { trimPathServer } from '../networkservice/trimpath';
import { kernelEndpointServer } from '../mechanisms/kernel/endpoint';
import { netnsPath } from '../sys';
import type { EndpointConfig } from './config';

export interface HostedEndpoint {
  readonly cfg: EndpointConfig;
  readonly chain: NetworkServiceServer;
  readonly pool: AddressPool;
  /** The namespace file the endpoint side lands in. */
  readonly netnsPath: string;
  registration: NetworkServiceEndpoint;
}

export const HOST_NETNS_PATH = '/proc/self/ns/net';

export function endpointNetnsPath(netns: string): string {
  return netns === 'host' ? HOST_NETNS_PATH : netnsPath(netns);
}

export function hostEndpoint(
  cfg: EndpointConfig,
  opts: { nodeName: string; url: string; tokens: TokenSource; ipamRecords?: Records<IpamRecord> },
): HostedEndpoint {
  const excluded = cfg.excludedPrefixes.map((p) => parsePrefix(p)!).filter(Boolean);
  const pool = new AddressPool(cfg.cidr.split(',').map((s) => s.trim()), excluded);
  const path = endpointNetnsPath(cfg.netns);
  const chain = chainServer(
    updatePathServer(cfg.name),
    updateTokenServer(opts.tokens),
    ipamServer(pool, opts.ipamRecords ? { records: opts.ipamRecords } : {}),
    kernelEndpointServer({ netns: path, ifname: cfg.interface }),
    trimPathServer(),
  );
  const labels = { ...cfg.labels, nodeName: opts.nodeName };
  const registration: NetworkServiceEndpoint = {
    name: cfg.name,
    network_service_names: cfg.services,
    network_service_labels: Object.fromEntries(cfg.services.map((s) => [s, { labels }])),
    url: opts.url,
  };
  return { cfg, chain, pool, netnsPath: path, registration };
}

/**
 * Registers the endpoint's services (only those not registered yet, so manifests applied by
 * users keep their matches) and the endpoint itself. `nse` should refresh the registration.
 */
export async function registerEndpoint(ctx: Ctx, ep: HostedEndpoint, reg: { ns: NsRegistry; nse: NseRegistry }): Promise<void> {
  await registerServices(ctx, ep, reg.ns);
  ep.registration = await reg.nse.register(ctx, ep.registration);
}

/** Registers the endpoint's network services that the registry does not have. */
export async function registerServices(ctx: Ctx, ep: HostedEndpoint, ns: NsRegistry): Promise<void> {
  for (const name of ep.cfg.services) {
    const existing = await findAll(ns.find(ctx, { network_service: { name }, watch: false }));
    if (!existing.some((r) => r.network_service?.name === name)) {
      await ns.register(ctx, { name, payload: ep.cfg.payload });
    }
  }
}
