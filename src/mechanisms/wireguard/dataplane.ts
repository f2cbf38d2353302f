/**
 * WIREGUARD as a tunnel dataplane (spec §5.2): a fresh Curve25519 key pair and a distinct
 * local UDP port per connection end, advertised as `<end>_public_key` / `<end>_ip` /
 * `<end>_port`; one device per end with exactly one peer (the other end's ip:port from the
 * mechanism, AllowedIPs 0.0.0.0/0 and ::/0, keepalive 10 s), created in the host namespace
 * (its UDP socket stays there), then moved into the target namespace under the requested name.
 * Payload IP only. A wireguard-go device that dies is restarted by its supervisor, and the
 * addresses and routes, which died with the old link, are put back here.
 */
import { AgentError } from '../../core/errors';
import type { Logger } from '../../core/log';
import * as sys from '../../sys';
import { configureSide, inNetns, type SideConfig } from '../kernel/vwire';
import { PAYLOAD, TYPE } from '../common';
import type { CreateArgs, PrepareArgs, TunnelDataplane } from '../tunnel/dataplane';
import { hostPort, paramIp, paramPort, type End, type Underlay } from '../tunnel/params';
import { KernelWireguard, WireguardGo, WG_OVERHEAD_V4, WG_OVERHEAD_V6, type WireguardDevice, type WireguardGoOptions } from './device';
import { generateKeyPair, validatePublicKey, type WgKeyPair } from './keys';
import { UdpPortAllocator } from './ports';

export interface WgLocal {
  keys: WgKeyPair;
  port: number;
}

export interface WgPeer {
  publicKey: string;
  ip: string;
  port: number;
}

export interface WgDevice {
  dev: WireguardDevice;
  target: { netns: string; ifname: string };
  side: SideConfig;
  peer: WgPeer;
}

export interface WireguardDataplaneOptions {
  underlay: Underlay;
  ports: UdpPortAllocator;
  log: Logger;
  /** Kernel WireGuard (generic netlink) instead of wireguard-go; see kernelWireguardSupported(). */
  kernel?: boolean;
  /** Devices kept started ahead of need once WireGuard is in use (default 0). */
  spares?: number;
  wireguardGo?: Omit<WireguardGoOptions, 'afterRestart'>;
}

const samePeer = (a: WgPeer, b: WgPeer): boolean => a.publicKey === b.publicKey && a.ip === b.ip && a.port === b.port;

export function wireguardDataplane(opts: WireguardDataplaneOptions): TunnelDataplane<WgLocal, WgPeer, WgDevice> {
  const createDevice = (hooks: Pick<WireguardGoOptions, 'afterRestart'>): WireguardDevice =>
    opts.kernel ? new KernelWireguard() : new WireguardGo({ ...opts.wireguardGo, ...hooks });
  const configOf = (local: WgLocal, peer: WgPeer | undefined) => ({
    privateKey: local.keys.privateKey,
    listenPort: local.port,
    ...(peer ? { peer: { publicKey: peer.publicKey, endpoint: hostPort(peer.ip, peer.port) } } : {}),
  });

  /** A device made ahead (prepare) or now (create); addressed once create() knows the side. */
  interface Prepared {
    dev: WireguardDevice;
    ifname: string;
    /** The peer last configured (undefined: keys and port only). */
    peer?: WgPeer;
    placed?: { mtu: number | undefined };
    addressed?: WgDevice;
  }

  const newDevice = (): Prepared => {
    const p: Prepared = { ifname: '' } as Prepared;
    p.dev = createDevice({
      afterRestart: async () => {
        if (p.addressed) await address(p.addressed);
      },
    });
    p.dev.on('restarted', (e) => opts.log.warn('wireguard-go restarted', { ifname: p.ifname, ...e }));
    p.dev.on('failed', (err) => opts.log.error('wireguard-go gave up', { ifname: p.ifname, error: err }));
    return p;
  };

  // Spare devices: created in the host namespace, not yet configured, so that a connection
  // does not wait for a device to start. Kept only once WireGuard is in use (an agent that
  // never tunnels runs no idle wireguard-go), and removed by close().
  const spareCount = opts.spares ?? 0;
  const spares: Prepared[] = [];
  let filling: Promise<void> | undefined;
  let closed = false;
  const refill = (): void => {
    if (filling || closed || spares.length >= spareCount) return;
    filling = (async () => {
      while (!closed && spares.length < spareCount) {
        const p = newDevice();
        try {
          await p.dev.create();
        } catch (err) {
          opts.log.warn('cannot make a spare WireGuard device', { error: err });
          await p.dev.delete().catch(() => {});
          return;
        }
        if (closed) await p.dev.delete().catch(() => {});
        else spares.push(p);
      }
    })().finally(() => {
      filling = undefined;
    });
  };
  const takeDevice = async (): Promise<Prepared> => {
    const spare = spares.shift();
    refill();
    if (spare && spare.dev.info().state === 'running') return spare;
    if (spare) await spare.dev.delete().catch(() => {});
    const p = newDevice();
    await p.dev.create();
    return p;
  };
  const configure = async (p: Prepared, local: WgLocal, peer: WgPeer | undefined): Promise<void> => {
    if (p.peer && peer && samePeer(p.peer, peer)) return;
    await p.dev.configure(configOf(local, peer));
    p.peer = peer;
  };

  const place = async (p: Prepared, target: { netns: string; ifname: string }, mtu: number | undefined): Promise<void> => {
    p.ifname = target.ifname;
    await inNetns(target.netns, (ns) => p.dev.move(ns, target.ifname, { mtu, up: true }));
    p.placed = { mtu };
  };

  const setMtuAt = (target: { netns: string; ifname: string }, mtu: number): Promise<void> =>
    inNetns(target.netns, async (ns) => {
      const rtnl = sys.Rtnl.for(ns);
      const link = await sys.getLink(rtnl, target.ifname);
      if (link) await sys.setMtu(rtnl, link.index, mtu);
    });

  /** Addresses and routes on the device as it is now (after a move or a restart). */
  const address = (d: { target: { netns: string; ifname: string }; side: SideConfig }): Promise<void> =>
    inNetns(d.target.netns, async (ns) => {
      const link = await sys.getLink(sys.Rtnl.for(ns), d.target.ifname);
      if (!link) throw new AgentError('DATAPLANE', `${d.target.ifname} not found in ${d.target.netns}`);
      await configureSide({ netns: ns, ifname: d.target.ifname }, link.index, d.side);
    });

  return {
    type: TYPE.WIREGUARD,
    payload: PAYLOAD.IP,
    overhead: { v4: WG_OVERHEAD_V4, v6: WG_OVERHEAD_V6 },

    async allocate() {
      return { keys: generateKeyPair(), port: await opts.ports.allocate() };
    },
    release(local) {
      opts.ports.release(local.port);
    },
    advertise(local, end: End) {
      return {
        [`${end}_ip`]: opts.underlay.ip,
        [`${end}_port`]: String(local.port),
        [`${end}_public_key`]: local.keys.publicKey,
      };
    },
    peerOf(params, end: End) {
      const key = params[`${end}_public_key`] ?? '';
      try {
        validatePublicKey(key);
      } catch (err) {
        throw new AgentError('INVALID_ARGUMENT', `mechanism parameter ${end}_public_key: ${(err as Error).message}`, { cause: err });
      }
      return { publicKey: key, ip: paramIp(params, `${end}_ip`), port: paramPort(params, `${end}_port`) };
    },

    async prepare({ local, peer, target, mtu }: PrepareArgs<WgLocal, WgPeer>): Promise<Prepared> {
      const p = await takeDevice();
      try {
        await configure(p, local, peer);
        if (target) await place(p, target, mtu);
      } catch (err) {
        await p.dev.delete().catch(() => {});
        throw err;
      }
      return p;
    },

    async discard(prepared) {
      await (prepared as Prepared).dev.delete();
    },

    async create({ local, peer, target, mtu, side, prepared }: CreateArgs<WgLocal, WgPeer>) {
      const p = (prepared as Prepared | undefined) ?? (await takeDevice());
      const d: WgDevice = { dev: p.dev, target, side, peer };
      try {
        await configure(p, local, peer);
        if (!p.placed) await place(p, target, mtu);
        else if (mtu !== undefined && mtu !== p.placed.mtu) await setMtuAt(target, mtu); // the answer lowered it
        p.addressed = d;
        await address(d);
      } catch (err) {
        await p.dev.delete().catch(() => {});
        throw err;
      }
      return d;
    },

    async close() {
      closed = true;
      await filling; // a spare being made now is deleted by the loop itself
      await Promise.all(spares.splice(0).map((p) => p.dev.delete().catch(() => {})));
    },

    async update(device, local, peer) {
      if (samePeer(device.peer, peer)) return;
      await device.dev.configure(configOf(local, peer));
      device.peer = peer;
    },

    async remove(device) {
      await device.dev.delete();
    },

    describe(device) {
      const i = device.dev.info();
      return { type: TYPE.WIREGUARD, ifname: device.target.ifname, netns: device.target.netns, device: i.hostName, impl: i.impl, pid: i.pid, listenPort: i.listenPort, restarts: i.restarts };
    },
  };
}
