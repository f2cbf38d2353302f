// SPDX-License-Identifier: Apache-2.0
/**
 * Kernel WireGuard: a kernel `wireguard` link per device, configured over generic netlink
 * (through src/sys). Used only when {@link kernelWireguardSupported} says so.
 */
import { EventEmitter } from 'node:events';
import { AgentError } from '../../core/errors';
import {
  Rtnl,
  SysError,
  createWireguardLink,
  deleteLink,
  getLink,
  hasGenlFamily,
  hostNetns,
  moveLink,
  openNetns,
  renameLink,
  sameNetns,
  setLinkUp,
  setMtu,
  setWireguardDevice,
  type Netns,
} from '../../sys';
import {
  WG_ALLOWED_IPS,
  WG_PERSISTENT_KEEPALIVE,
  dupNetns,
  liveNames,
  toAgentError,
  type MoveOptions,
  type WireguardConfig,
  type WireguardDevice,
  type WireguardDeviceInfo,
  type WireguardSnapshot,
  type WireguardState,
} from './device';
import { validatePrivateKey, validatePublicKey } from './keys';
import { refusal } from './leftovers';
import { parseEndpoint, tempWireguardName, validateConfig, validateWireguardName } from './names';

let kernelSupport: Promise<boolean> | undefined;

/**
 * True if the kernel has the 'wireguard' generic-netlink family (module
 * built in or loaded). Cached. Looks up the family in the agent's own ns.
 */
export function kernelWireguardSupported(): Promise<boolean> {
  kernelSupport ??= hasGenlFamily('wireguard');
  return kernelSupport;
}

export class KernelWireguard extends EventEmitter implements WireguardDevice {
  private state: WireguardState = 'new';
  private hostName = '';
  private linkName = '';
  private ns: Netns | undefined;
  private ifindex: number | undefined;
  private cfg: WireguardConfig | undefined;
  private nsPath: string | undefined;

  /** Takes back a link a previous run left (the kernel keeps it configured); throws if it is gone. */
  static async adopt(snap: WireguardSnapshot): Promise<KernelWireguard> {
    const d = new KernelWireguard();
    let ns: Netns | undefined;
    try {
      ns = snap.netns ? openNetns(snap.netns) : undefined;
    } catch (err) {
      throw refusal(snap, 'netns', err);
    }
    const name = snap.netns ? snap.name : snap.hostName;
    const link = await getLink(Rtnl.for(ns ?? hostNetns()), name);
    if (!link) {
      ns?.close();
      throw refusal(snap, 'link');
    }
    d.ns = ns;
    if (snap.netns) d.nsPath = snap.netns;
    d.ifindex = link.index;
    d.hostName = snap.hostName;
    d.linkName = name;
    if (snap.cfg) d.cfg = snap.cfg;
    d.state = 'running';
    liveNames.set(snap.hostName, d);
    return d;
  }

  snapshot(): WireguardSnapshot {
    const s: WireguardSnapshot = { impl: 'kernel', hostName: this.hostName, name: this.linkName };
    if (this.cfg) s.cfg = { ...this.cfg };
    if (this.nsPath) s.netns = this.nsPath;
    return s;
  }

  info(): WireguardDeviceInfo {
    const i: WireguardDeviceInfo = { impl: 'kernel', state: this.state, hostName: this.hostName, name: this.linkName, restarts: 0 };
    if (this.ns !== undefined) i.netns = this.ns.path;
    if (this.ifindex !== undefined) i.ifindex = this.ifindex;
    if (this.cfg !== undefined) {
      i.listenPort = this.cfg.listenPort;
      if (this.cfg.peer) i.peerPublicKey = this.cfg.peer.publicKey;
    }
    return i;
  }

  async create(name: string = tempWireguardName()): Promise<void> {
    if (this.state !== 'new') throw new AgentError('FAILED_PRECONDITION', 'wireguard device already created');
    validateWireguardName(name);
    if (!(await kernelWireguardSupported())) throw new AgentError('UNSUPPORTED_MECHANISM', 'kernel WireGuard is not available');
    const host = Rtnl.for(hostNetns());
    try {
      await createWireguardLink(host, name);
    } catch (err) {
      throw toAgentError(err, `create WireGuard link ${name}`);
    }
    this.ifindex = (await getLink(host, name))?.index;
    this.hostName = name;
    this.linkName = name;
    liveNames.set(name, this);
    this.state = 'running';
  }

  async configure(cfg: WireguardConfig): Promise<void> {
    if (this.state !== 'running') throw new AgentError('FAILED_PRECONDITION', `configure: WireGuard device is ${this.state}`);
    validateConfig(cfg);
    const endpoint = cfg.peer ? parseEndpoint(cfg.peer.endpoint) : undefined;
    try {
      // The genetlink socket is opened where the link is.
      await setWireguardDevice(this.ns, this.linkName, {
        privateKey: validatePrivateKey(cfg.privateKey),
        listenPort: cfg.listenPort,
        peers:
          cfg.peer && endpoint
            ? [
                {
                  publicKey: validatePublicKey(cfg.peer.publicKey),
                  endpoint,
                  persistentKeepalive: cfg.persistentKeepalive ?? WG_PERSISTENT_KEEPALIVE,
                  allowedIps: WG_ALLOWED_IPS,
                },
              ]
            : [],
      });
    } catch (err) {
      throw toAgentError(err, `configure WireGuard link ${this.linkName}`);
    }
    this.cfg = cfg;
  }

  async move(target: Netns, newName: string, options: MoveOptions = {}): Promise<void> {
    if (this.state !== 'running' || this.ifindex === undefined) throw new AgentError('FAILED_PRECONDITION', 'move: not created');
    validateWireguardName(newName);
    // From the host ns, from another namespace, or (already in `target`) a rename in place.
    const from = this.ns;
    const inPlace = from !== undefined && sameNetns(from, target);
    const here = Rtnl.for(from ?? hostNetns());
    const own = inPlace ? from : dupNetns(target);
    try {
      if (options.mtu !== undefined) await setMtu(here, this.ifindex, options.mtu);
      if (!inPlace) await moveLink(here, this.ifindex, own, newName);
      else if (newName !== this.linkName) {
        await setLinkUp(here, this.ifindex, false); // the kernel renames only links that are down
        await renameLink(here, this.ifindex, newName);
      }
      const there = Rtnl.for(own);
      const link = await getLink(there, newName);
      if (link === undefined) throw new AgentError('DATAPLANE', `link ${newName} vanished after the move`);
      if (options.up ?? true) await setLinkUp(there, link.index, true);
      this.ifindex = link.index;
    } catch (err) {
      if (!inPlace) own.close();
      throw toAgentError(err, `move WireGuard link ${this.hostName}`);
    }
    if (from && !inPlace) from.close();
    this.ns = own;
    this.nsPath = target.path;
    this.linkName = newName;
  }

  async delete(): Promise<void> {
    if (this.state === 'deleted') return;
    if (this.ifindex !== undefined) {
      try {
        await deleteLink(Rtnl.for(this.ns ?? hostNetns()), this.ifindex);
      } catch (err) {
        if (!(err instanceof SysError && err.code === 'ENODEV')) throw toAgentError(err, 'delete WireGuard link');
      }
    }
    this.ns?.close();
    this.ns = undefined;
    if (liveNames.get(this.hostName) === this) liveNames.delete(this.hostName);
    this.state = 'deleted';
    this.emit('deleted');
  }
}

