/**
 * The mechanisms of the agent's server chain and remote chain: KERNEL (veth) always; with an
 * underlay, the WireGuard and VXLAN tunnels, each a server (this host is the next hop) and a
 * client (this host dials the next hop) over one dataplane. Each records what it makes in the
 * state directory, for a restarted agent to take back or reap.
 */
import { statSync } from 'node:fs';
import type { Connection, Mechanism } from '../api';
import type { Logger } from '../core/log';
import { chainServer, type NetworkServiceClient, type NetworkServiceServer } from '../core/networkservice';
import { kernelSide } from '../mechanisms/kernel/params';
import { kernelReaper, kernelServer, type KernelVWire } from '../mechanisms/kernel/server';
import { policyReaper, policyRoutesServer } from '../mechanisms/kernel/iprule';
import { connectedPrefixes } from '../mechanisms/kernel/connected';
import { excludedPrefixesServer, type ClientSide } from '../networkservice/excludedprefixes';
import { tunnelClient, TunnelClient } from '../mechanisms/tunnel/client';
import type { Underlay } from '../mechanisms/tunnel/params';
import { tunnelServer, TunnelServer } from '../mechanisms/tunnel/server';
import { vxlanDataplane, vxlanReaper } from '../mechanisms/vxlan/dataplane';
import { wireguardDataplane, wireguardReaper } from '../mechanisms/wireguard/dataplane';
import { UdpPortAllocator } from '../mechanisms/wireguard/ports';
import { mechanismTranslationClient, type MechanismTranslationClient } from '../networkservice/mechanismtranslation/client';
import type { AgentConfig } from './config';
import type { ConnectionInterfaces } from './metrics/traffic';
import type { StateStore } from './state/store';

/**
 * Registers every mechanism's reaper with the state directory, also those of mechanisms that
 * are off in this run, so that what an earlier run made with them is still reaped when due.
 */
export function registerReapers(store: StateStore): void {
  store.records('wireguard', wireguardReaper);
  store.records('vxlan', vxlanReaper);
  store.records('veth', kernelReaper);
  store.records('iprule', policyReaper);
}

/** A KERNEL connection's namespace and interface; the namespace keyed by its inode. */
function kernelClientSide(conn: Connection): ClientSide | undefined {
  if (conn.mechanism?.type !== 'KERNEL') return undefined;
  const side = kernelSide(conn.mechanism);
  let key = side.netns;
  try {
    const st = statSync(side.netns);
    key = `${st.dev}:${st.ino}`;
  } catch {
    /* not there: the kernel server fails the Request with NETNS_NOT_FOUND */
  }
  return { ...side, key };
}

export interface Mechanisms {
  /** The server chain's mechanism handlers, by mechanism type. */
  handlers: Record<string, NetworkServiceServer>;
  /** The remote chain's mechanism translation (the mechanism the next hop chose, by connection). */
  translation: MechanismTranslationClient;
  /** The remote chain's tunnel clients in order of preference; none without an underlay. */
  tunnelClients: NetworkServiceClient[];
  /** The tunnel of a connection: the mechanism the next hop chose, and the local device. */
  tunnelOf(id: string): { mechanism?: Mechanism; device?: Record<string, unknown> };
  /** The interfaces of a connection of the server chain at this host (for its traffic figures). */
  interfacesOf(conn: Connection): ConnectionInterfaces;
  /** Stops the dataplanes (what they made stays, recorded). */
  close(): Promise<void>;
}

export interface MechanismsOptions {
  underlay: Underlay | undefined;
  wireguard: AgentConfig['wireguard'];
  /** Kernel WireGuard rather than wireguard-go. */
  wireguardKernel: boolean;
  store: StateStore;
  log: Logger;
}

export function openMechanisms(o: MechanismsOptions): Mechanisms {
  const vwires = new Map<string, KernelVWire>();
  const onChange = (id: string, vwire: KernelVWire | undefined) => (vwire ? vwires.set(id, vwire) : vwires.delete(id));
  // KERNEL: addresses outside what the client's namespace uses; its policy routes once its
  // interface is there (a vWire, or a tunnel's end).
  const handlers: Record<string, NetworkServiceServer> = {
    KERNEL: chainServer(
      excludedPrefixesServer({ clientSide: kernelClientSide, connected: connectedPrefixes }),
      policyRoutesServer({ records: o.store.records('iprule', policyReaper) }),
      kernelServer({ records: o.store.records('veth', kernelReaper), onChange }),
    ),
  };
  const translation = mechanismTranslationClient();
  const servers: TunnelServer[] = [];
  const clients: TunnelClient[] = [];
  const dataplanes: { close?(): Promise<void> }[] = [];
  if (o.underlay) {
    const underlay = o.underlay;
    const ports = new UdpPortAllocator({ min: o.wireguard.portMin, max: o.wireguard.portMax, host: underlay.ip });
    const wg = wireguardDataplane({
      underlay,
      ports,
      log: o.log,
      kernel: o.wireguardKernel,
      spares: o.wireguard.spares,
      records: o.store.records('wireguard', wireguardReaper),
    });
    const vx = vxlanDataplane({ underlay, records: o.store.records('vxlan', vxlanReaper) });
    dataplanes.push(wg, vx);
    const wgServer = tunnelServer(wg, { underlay });
    const vxServer = tunnelServer(vx, { underlay });
    servers.push(wgServer, vxServer);
    clients.push(tunnelClient(wg, { underlay }), tunnelClient(vx, { underlay }));
    handlers['WIREGUARD'] = wgServer;
    handlers['VXLAN'] = vxServer;
  }
  const tunnelOf = (id: string) => ({
    mechanism: translation.chosen(id),
    device: [...clients, ...servers].map((t) => t.describe(id)).find((d) => d !== undefined),
  });
  return {
    handlers,
    translation,
    tunnelClients: clients,
    tunnelOf,
    // KERNEL: the client's interface (a vWire's end, or the tunnel device moved there), and a
    // local vWire's endpoint end. A tunnel from another host: the device in the endpoint's namespace.
    interfacesOf: (conn) => {
      const id = conn.id ?? '';
      if (conn.mechanism?.type === 'KERNEL') {
        const vwire = vwires.get(id);
        return vwire ? { server: vwire.pair.client, client: vwire.pair.endpoint } : { server: kernelSide(conn.mechanism) };
      }
      const device = tunnelOf(id).device;
      return device?.['ifname'] && device['netns'] ? { client: { netns: String(device['netns']), ifname: String(device['ifname']) } } : {};
    },
    close: async () => {
      await Promise.all(dataplanes.map((d) => d.close?.().catch(() => {})));
    },
  };
}
