// SPDX-License-Identifier: Apache-2.0
// Over 500 lines: one closure, the TunnelDataplane adapter, whose steps share each device's state.
/**
 * WIREGUARD as a tunnel dataplane, as NSM's wireguard mechanism: a fresh Curve25519 key pair
 * and a distinct local UDP port per connection end, advertised as `<end>_public_key` /
 * `<end>_ip` / `<end>_port`; one device per end with exactly one peer (the other end's ip:port
 * from the mechanism, AllowedIPs 0.0.0.0/0 and ::/0, keepalive 10 s), created in the host
 * namespace (its UDP socket stays there), then moved into the target namespace under the
 * requested name. Payload IP only. A wireguard-go device that dies is restarted by its
 * supervisor, and the addresses and routes, which died with the old link, are put back here.
 * Devices made ahead of need come from a {@link SparePool}; devices are made through a
 * {@link DeviceFactory} (unit tests pass in-memory fakes).
 */
import { AgentError } from '../../core/errors';
import type { Logger } from '../../core/log';
import { noRecords, type Records } from '../../core/records';
import * as sys from '../../sys';
import { configureSide, inNetns, type SideConfig } from '../kernel/vwire';
import { PAYLOAD, TYPE } from '../common';
import type { CreateArgs, PrepareArgs, TunnelDataplane } from '../tunnel/dataplane';
import { hostPort, paramIp, paramPort, type End, type Underlay } from '../tunnel/params';
import { isListenPortTaken, type WireguardDevice, type WireguardSnapshot } from './device';
import { hostDevices, type DeviceFactory } from './factory';
import { generateKeyPair, validatePublicKey, type WgKeyPair } from './keys';
import { reapWireguard } from './leftovers';
import { WG_OVERHEAD_V4, WG_OVERHEAD_V6, wireguardMtu } from './names';
import type { UdpPortAllocator } from './ports';
import { SparePool } from './spares';
import type { WireguardGoOptions } from './wireguard-go';

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
  /** The dataplane's handle on the device (restart hooks). */
  prepared: { onRestart?: () => void };
  /** remove() ran: the device may be a spare now, or gone. */
  removed?: boolean;
}

export interface WireguardDataplaneOptions {
  underlay: Underlay;
  ports: UdpPortAllocator;
  log: Logger;
  /** Kernel WireGuard (generic netlink) instead of wireguard-go; see kernelWireguardSupported(). */
  kernel?: boolean;
  /** Devices kept started ahead of need once WireGuard is in use (default 0). */
  spares?: number;
  /** Quiet time after the last take of a spare before spares are made again (default SPARE_REFILL_DELAY_MS). */
  spareRefillDelayMs?: number;
  wireguardGo?: Omit<WireguardGoOptions, 'afterRestart'>;
  /**
   * Where devices are recorded for a restarted agent: `dev:<hostName>` for a device no
   * connection owns yet (spare, head start; reaped at the next start), `conn:<id>` for a
   * connection's end (adopted on its next Request, else reaped at `expires`).
   */
  records?: Records<WgRecord>;
  /** How devices are made, taken back and reaped (default: wireguard-go, or kernel WireGuard with `kernel`). */
  devices?: DeviceFactory;
}

export interface WgRecord {
  /** Epoch ms; 0: reap at the next start. */
  expires: number;
  device: WireguardSnapshot;
  local?: WgLocal;
  target?: { netns: string; ifname: string };
  side?: SideConfig;
  peer?: WgPeer;
}

/** The reaper for WireGuard records (StateStore kind options). */
export const wireguardReaper = {
  expiresOf: (r: WgRecord) => r.expires,
  reap: (_key: string, r: WgRecord) => reapWireguard(r.device),
};

/** Quiet time after the last take of a spare before spares are made again. */
export const SPARE_REFILL_DELAY_MS = 100;
/** How long spares keep waiting in a namespace after the last connection end there left. */
export const SPARE_HOME_IDLE_MS = 1000;
/** Listen ports a connection end tries (the first and replacements) when its port is found taken. */
export const LISTEN_PORT_ATTEMPTS = 3;

/** Waits for all, then throws the first failure (nothing is left running when it throws). */
async function settleAll(all: Promise<unknown>[]): Promise<void> {
  const r = await Promise.allSettled(all);
  const failed = r.find((x): x is PromiseRejectedResult => x.status === 'rejected');
  if (failed) throw failed.reason;
}

const samePeer = (a: WgPeer, b: WgPeer): boolean => a.publicKey === b.publicKey && a.ip === b.ip && a.port === b.port;

export function wireguardDataplane(opts: WireguardDataplaneOptions): TunnelDataplane<WgLocal, WgPeer, WgDevice> {
  const records = opts.records ?? noRecords<WgRecord>();
  const devKey = (dev: WireguardDevice) => `dev:${dev.info().hostName}`;
  const devices = opts.devices ?? hostDevices({ ...opts, wireguardGo: { mtu: wireguardMtu(opts.underlay.mtu, opts.underlay.family), ...opts.wireguardGo } });
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
    /** Re-records the device after a restart of its process (set by persist). */
    onRestart?: () => void;
    placed?: { mtu: number | undefined };
    /** A spare's namespace (path) while it waits there, down, under its temporary name. */
    waitsIn?: string;
    addressed?: WgDevice;
    /** The key pair and port the device has now (set over UAPI). */
    local?: WgLocal;
    /**
     * A spare's own values (its key pair, and a port taken from the allocator for it), set ahead
     * so that a connection only adds its peer; they become a connection's through allocate().
     * Its port goes back to the allocator with the spare, or once the device has another port.
     */
    own?: WgLocal;
    /** prepare()'s UAPI set, still running: create() places the link meanwhile. */
    configuring?: Promise<void>;
  }

  const watch = (p: Prepared): void => {
    p.dev.on('restarted', (e) => {
      opts.log.warn('wireguard-go restarted', { ifname: p.ifname, ...e });
      p.onRestart?.(); // its PID changed: the record must follow
    });
    p.dev.on('failed', (err) => opts.log.error('wireguard-go gave up', { ifname: p.ifname, error: err }));
  };
  const newDevice = (): Prepared => {
    const p: Prepared = { ifname: '' } as Prepared;
    p.dev = devices.make({
      afterRestart: async () => {
        if (p.addressed) await address(p.addressed);
      },
    });
    watch(p);
    return p;
  };
  /** create() of a new device, recorded as owned by no connection yet. */
  const startDevice = async (p: Prepared): Promise<void> => {
    await p.dev.create();
    records.put(devKey(p.dev), { expires: 0, device: p.dev.snapshot() });
  };
  const deleteDevice = async (dev: WireguardDevice): Promise<void> => {
    const key = devKey(dev);
    await dev.delete();
    records.delete(key);
  };
  /** Deletes a device no connection owns (a spare), and gives back the port it was given. */
  const dropSpare = async (p: Prepared): Promise<void> => {
    const own = p.own;
    p.own = undefined;
    try {
      await deleteDevice(p.dev);
    } finally {
      if (own) opts.ports.release(own.port); // the process is gone: nothing holds the port now
    }
  };

  /** A spare: a running device with its own key pair and port, no peer. */
  const startSpare = async (): Promise<Prepared> => {
    const p = newDevice();
    try {
      const own: WgLocal = { keys: generateKeyPair(), port: await opts.ports.allocate() };
      p.own = own;
      await startDevice(p);
      await configure(p, own, undefined); // key and port now, while nothing waits for them
      return p;
    } catch (err) {
      await dropSpare(p).catch(() => {});
      throw err;
    }
  };
  /** Moves a spare, down and under its temporary name, into `netns` (re-recorded there). */
  const wait = async (p: Prepared, netns: string): Promise<void> => {
    await inNetns(netns, (ns) => p.dev.move(ns, p.dev.info().hostName, { up: false }));
    p.waitsIn = netns;
    records.put(devKey(p.dev), { expires: 0, device: p.dev.snapshot() });
  };
  const pool = new SparePool<Prepared>(
    {
      start: startSpare,
      wait,
      drop: dropSpare,
      waitsIn: (p) => p.waitsIn,
      usable: (p) => p.dev.info().state === 'running',
    },
    { count: opts.spares ?? 0, refillDelayMs: opts.spareRefillDelayMs ?? SPARE_REFILL_DELAY_MS, homeIdleMs: SPARE_HOME_IDLE_MS, log: opts.log },
  );

  // Values allocate() handed out from a spare, and that spare, until prepare() or create()
  // takes it (or release() deletes it: the request never got that far).
  const reserved = new Map<WgLocal, Prepared>();
  /** A running device for the connection end with values `local`, going to `netns`. */
  const takeDevice = async (netns: string | undefined, local: WgLocal): Promise<Prepared> => {
    const mine = reserved.get(local);
    if (mine) {
      reserved.delete(local);
      if (mine.dev.info().state === 'running') return mine;
      await deleteDevice(mine.dev).catch(() => {}); // its port is the connection's, released with it
    }
    const spare = await pool.take(netns);
    if (spare) return spare;
    const p = newDevice();
    try {
      await startDevice(p);
    } catch (err) {
      await deleteDevice(p.dev).catch(() => {});
      throw err;
    }
    return p;
  };
  /**
   * Sets `local` (key pair, port) and `peer` on the device. A listen port found bound by another
   * socket (the allocator's probe cannot close the race with other binds) is replaced by a fresh
   * one from the allocator, up to LISTEN_PORT_ATTEMPTS times; `local.port` then changes in place,
   * and whoever advertised it advertises it again (the tunnel server's answer does; a requesting
   * end's new port reaches the server by its handshake, WireGuard roaming, and its next refresh).
   */
  const configure = async (p: Prepared, local: WgLocal, peer: WgPeer | undefined): Promise<void> => {
    if (p.local === local && (peer ? p.peer && samePeer(p.peer, peer) : !p.peer)) return;
    for (let attempt = 1; ; attempt++) {
      try {
        await p.dev.configure(configOf(local, peer));
        break;
      } catch (err) {
        if (attempt >= LISTEN_PORT_ATTEMPTS || !isListenPortTaken(err)) throw err;
        const taken = local.port;
        local.port = await opts.ports.allocate();
        opts.ports.release(taken); // not ours now; the probe keeps it from being handed out while bound
        opts.log.warn('WireGuard listen port taken by another socket; using another', { ifname: p.ifname, taken, port: local.port });
      }
    }
    p.local = local;
    p.peer = peer;
    if (p.own && p.own !== local) {
      // a spare taken with other values: it no longer listens on its own port
      opts.ports.release(p.own.port);
      p.own = undefined;
    }
  };

  const place = async (p: Prepared, target: { netns: string; ifname: string }, mtu: number | undefined): Promise<void> => {
    p.ifname = target.ifname;
    if (p.waitsIn !== target.netns) pool.movedTo(target.netns); // a move on the connect path: wait there next time
    await inNetns(target.netns, (ns) => p.dev.move(ns, target.ifname, { mtu, up: true }));
    p.placed = { mtu };
    p.waitsIn = undefined;
  };

  /**
   * A connection's end, closed in the pool's home, kept as a spare instead of deleted (when one
   * is missing): new key pair and port, no peer (replaced by none), down, under its temporary
   * name, without the connection's addresses (IPv4 ones are removed; IPv6 ones and the routes go
   * with the link's going down). Deleting the device and making a spare again would cost the
   * kernel two RCU barriers under the RTNL lock (the TUN's unregistration, the new one's move
   * here) and a wireguard-go start, in the way of the connections that follow. False: not kept
   * (the caller deletes it).
   */
  const keepAsSpare = (p: Prepared, d: WgDevice): Promise<boolean> => {
    if (opts.kernel || d.dev.info().state !== 'running' || p.configuring) return Promise.resolve(false);
    return pool.keep(d.target.netns, () => recycle(p, d));
  };
  /** Turns a closed end into a spare waiting where it was; undefined: that failed, and it is gone. */
  const recycle = async (p: Prepared, d: WgDevice): Promise<Prepared | undefined> => {
    let own: WgLocal | undefined;
    try {
      own = { keys: generateKeyPair(), port: await opts.ports.allocate() };
      p.onRestart = undefined; // the connection's record is forgotten by the caller
      p.addressed = undefined; // a restart no longer puts its addresses back
      await configure(p, own, undefined); // its peer and its key gone first: nothing reaches it any more
      p.own = own;
      await inNetns(d.target.netns, async (ns) => {
        await p.dev.move(ns, p.dev.info().hostName, { up: false });
        const rtnl = sys.Rtnl.for(ns);
        const index = p.dev.info().ifindex;
        if (index === undefined) throw new AgentError('DATAPLANE', 'recycled WireGuard link has no ifindex');
        for (const a of await sys.listAddresses(rtnl, index)) await sys.delAddress(rtnl, index, a.cidr);
      });
    } catch (err) {
      opts.log.debug('cannot keep a closed WireGuard end as a spare; deleting it', { error: err });
      if (own && !p.own) p.own = own; // dropSpare gives the port back once the process is gone
      await dropSpare(p).catch(() => {});
      return undefined;
    }
    p.ifname = '';
    p.placed = undefined;
    p.waitsIn = d.target.netns;
    records.put(devKey(p.dev), { expires: 0, device: p.dev.snapshot() });
    return p;
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
      // A spare's values first (its device already has them): the end will likely be made where
      // spares wait, and then only its peer is set. Both ends' keys are still fresh per connection.
      const spare = await pool.take(pool.home);
      if (spare?.own) {
        const local = spare.own;
        spare.own = undefined; // the connection's now, released with it
        reserved.set(local, spare);
        return local;
      }
      if (spare) pool.putBack(spare); // none of its own (cannot happen): back to the others
      return { keys: generateKeyPair(), port: await opts.ports.allocate() };
    },
    release(local) {
      const spare = reserved.get(local);
      reserved.delete(local);
      if (!spare) {
        opts.ports.release(local.port);
        return;
      }
      // handed out, never used: its device goes, then its port
      void deleteDevice(spare.dev)
        .catch(() => {})
        .finally(() => opts.ports.release(local.port));
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
      const p = await takeDevice(target ? target.netns : pool.home, local); // no target yet (serving end): likely home
      // The UAPI set (usually the peer alone: a spare has its key and port) runs alongside the
      // placement here, and on the serving end alongside the endpoint and create()'s placement.
      const configuring = configure(p, local, peer);
      p.configuring = configuring;
      configuring.then(
        () => {
          if (p.configuring === configuring) p.configuring = undefined; // done: create() need not wait a turn
        },
        () => {}, // create() or discard() sees the failure
      );
      try {
        if (target) await settleAll([configuring, place(p, target, mtu)]);
      } catch (err) {
        await configuring.catch(() => {});
        await dropSpare(p).catch(() => {});
        throw err;
      }
      return p;
    },

    async discard(prepared) {
      const p = prepared as Prepared;
      await p.configuring?.catch(() => {});
      await dropSpare(p);
    },

    async create({ local, peer, target, mtu, side, prepared }: CreateArgs<WgLocal, WgPeer>) {
      if (side.bridge) {
        // A WireGuard device carries IP packets, not frames: it cannot be a bridge port.
        if (prepared) await dropSpare(prepared as Prepared).catch(() => {});
        throw new AgentError(
          'UNSUPPORTED_MECHANISM',
          `${target.ifname} in ${target.netns} must join bridge ${side.bridge} (a passthrough endpoint), which a WireGuard vWire cannot: give the service payload ETHERNET so that other hosts reach it over VXLAN`,
        );
      }
      const p = (prepared as Prepared | undefined) ?? (await takeDevice(target.netns, local));
      const d: WgDevice = { dev: p.dev, target, side, peer, prepared: p };
      try {
        // The peer over UAPI and the link over rtnetlink are independent: both at once.
        // The UAPI request goes first: the link's requests below block the event loop until the
        // kernel answers, and wireguard-go works on the peer meanwhile.
        const uapi = (async () => {
          if (p.configuring) await p.configuring;
          p.configuring = undefined;
          await configure(p, local, peer);
        })();
        const link = (async () => {
          if (!p.placed) await place(p, target, mtu);
          else if (mtu !== undefined && mtu !== p.placed.mtu) {
            await setMtuAt(target, mtu); // the answer lowered it
            p.placed.mtu = mtu;
          }
          p.addressed = d;
          await address(d);
        })();
        await settleAll([uapi, link]);
      } catch (err) {
        await dropSpare(p).catch(() => {});
        throw err;
      }
      pool.endArrived(target.netns);
      return d;
    },

    async adopt(id) {
      const r = records.claim(`conn:${id}`);
      if (!r) return undefined;
      if (!r.local || !r.target || !r.side || !r.peer) {
        await devices.reap(r.device).catch(() => {});
        records.delete(`conn:${id}`);
        return undefined;
      }
      const p: Prepared = { ifname: r.target.ifname, peer: r.peer, placed: { mtu: r.device.move?.mtu || undefined } } as Prepared;
      const d: WgDevice = { dev: undefined as unknown as WireguardDevice, target: r.target, side: r.side, peer: r.peer, prepared: p };
      p.addressed = d;
      try {
        const afterRestart = async () => {
          await address(d);
        };
        p.dev = await devices.adopt(r.device, { afterRestart });
      } catch (err) {
        opts.log.warn('cannot take back a WireGuard device; removing it', { id, device: r.device.hostName, error: err });
        await devices.reap(r.device).catch(() => {});
        records.delete(`conn:${id}`);
        return undefined;
      }
      d.dev = p.dev;
      pool.endArrived(r.target.netns);
      watch(p);
      if (!opts.ports.reserve(r.local.port)) opts.log.warn('adopted WireGuard port was already in use here', { id, port: r.local.port });
      opts.log.info('WireGuard device taken back', { id, ifname: r.target.ifname, device: r.device.hostName, pid: p.dev.info().pid });
      return { local: r.local, device: d };
    },

    persist(id, local, device, expires) {
      const save = () =>
        records.put(`conn:${id}`, { expires, device: device.dev.snapshot(), local, target: device.target, side: device.side, peer: device.peer });
      save();
      records.delete(devKey(device.dev));
      device.prepared.onRestart = save;
    },

    forget(id) {
      records.delete(`conn:${id}`);
    },

    async close() {
      await pool.close();
    },

    async update(device, local, peer, mtu) {
      if (!samePeer(device.peer, peer)) {
        await device.dev.configure(configOf(local, peer));
        device.peer = peer;
      }
      const placed = (device.prepared as Prepared).placed;
      if (mtu !== undefined && placed && mtu !== placed.mtu) {
        await setMtuAt(device.target, mtu);
        placed.mtu = mtu;
      }
    },

    async remove(device) {
      if (device.removed) return; // once: a recycled device is a spare now, not this end
      device.removed = true;
      try {
        const kept = await keepAsSpare(device.prepared as Prepared, device);
        if (!kept) await deleteDevice(device.dev);
      } finally {
        pool.endLeft(device.target.netns); // gone or not, this connection no longer keeps spares there
      }
    },

    describe(device) {
      const i = device.dev.info();
      return { type: TYPE.WIREGUARD, ifname: device.target.ifname, netns: device.target.netns, device: i.hostName, impl: i.impl, pid: i.pid, listenPort: i.listenPort, restarts: i.restarts };
    },
  };
}
