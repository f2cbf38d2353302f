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
import { configureSide, requireNetns, type SideConfig } from '../kernel/vwire';
import { PAYLOAD, TYPE } from '../common';
import type { CreateArgs, TunnelDataplane } from '../tunnel/dataplane';
import { hostPort, paramIp, paramPort, type End, type Underlay } from '../tunnel/params';
import { createWireguardDevice, WG_OVERHEAD_V4, WG_OVERHEAD_V6, type WireguardDevice, type WireguardGoOptions } from './device';
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
  /** wireguard-go even where the kernel has WireGuard (tests, or by choice). */
  preferUserspace?: boolean;
  wireguardGo?: Omit<WireguardGoOptions, 'afterRestart'>;
}

export function wireguardDataplane(opts: WireguardDataplaneOptions): TunnelDataplane<WgLocal, WgPeer, WgDevice> {
  const configOf = (local: WgLocal, peer: WgPeer) => ({
    privateKey: local.keys.privateKey,
    listenPort: local.port,
    peer: { publicKey: peer.publicKey, endpoint: hostPort(peer.ip, peer.port) },
  });

  /** Addresses and routes on the device as it is now (after a move or a restart). */
  const address = async (d: { target: { netns: string; ifname: string }; side: SideConfig }): Promise<void> => {
    const ns = requireNetns(d.target.netns);
    try {
      const link = await sys.getLink(sys.Rtnl.for(ns), d.target.ifname);
      if (!link) throw new Error(`${d.target.ifname} not found in ${d.target.netns}`);
      await configureSide({ netns: ns, ifname: d.target.ifname }, link.index, d.side);
    } finally {
      ns.close();
    }
  };

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

    async create({ local, peer, target, mtu, side }: CreateArgs<WgLocal, WgPeer>) {
      const d: Partial<WgDevice> & { target: WgDevice['target']; side: SideConfig } = { target, side };
      const dev = await createWireguardDevice({
        ...opts.wireguardGo,
        preferUserspace: opts.preferUserspace,
        afterRestart: () => address(d),
      });
      d.dev = dev;
      dev.on('restarted', (e) => opts.log.warn('wireguard-go restarted', { ifname: target.ifname, ...e }));
      dev.on('failed', (err) => opts.log.error('wireguard-go gave up', { ifname: target.ifname, error: err }));
      const ns = requireNetns(target.netns);
      try {
        await dev.create();
        await dev.configure(configOf(local, peer));
        await dev.move(ns, target.ifname, { mtu, up: true });
        await address(d as WgDevice);
      } catch (err) {
        await dev.delete().catch(() => {});
        throw err;
      } finally {
        ns.close();
      }
      d.peer = peer;
      return d as WgDevice;
    },

    async update(device, local, peer) {
      if (device.peer.publicKey === peer.publicKey && device.peer.ip === peer.ip && device.peer.port === peer.port) return;
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
