/**
 * The point-to-point endpoint, the kind every agent.yaml endpoint and unit Provide= is: each
 * connection gets a pair of addresses from `cidr` (ipam) and an interface on the endpoint side
 * in `netns` (the KERNEL endpoint side).
 */
import { AddressPool } from '../../../networkservice/ipam/pool';
import { parsePrefix } from '../../../networkservice/ipam/cidr';
import { ipamServer } from '../../../networkservice/ipam/server';
import { kernelEndpointServer } from '../../../mechanisms/kernel/endpoint';
import type { EndpointKind } from '../kind';

export const p2pEndpoint: EndpointKind = (cfg, env) => {
  const excluded = cfg.excludedPrefixes.map((p) => parsePrefix(p)!).filter(Boolean);
  const pool = new AddressPool(cfg.cidr.split(',').map((s) => s.trim()), excluded);
  return {
    elements: [ipamServer(pool, { records: env.ipamRecords }), kernelEndpointServer({ netns: env.netnsPath, ifname: cfg.interface })],
    connectionCount: () => pool.size,
    release: (key) => pool.release(key),
  };
};
