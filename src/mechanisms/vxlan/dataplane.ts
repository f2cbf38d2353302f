/**
 * VXLAN as a tunnel dataplane, as NSM's vxlan mechanism: payload ETHERNET. Both ends use one UDP port
 * (4789; Linux sends to and listens on the same `dstport`, and VPP does likewise), so a peer
 * advertising another port is refused. The serving end chooses the VNI with the parity rule,
 * unique among this agent's devices (stricter than NSM's per-remote uniqueness: Linux
 * refuses two devices with one VNI on the same local address and port) and kept across
 * refreshes; a VNI the requester already carries (a refresh after this agent restarted) is
 * kept when it is valid and free.
 *
 * One kernel vxlan device per end, made by one RTM_NEWLINK in the host namespace (the UDP
 * socket stays there) that places it straight into the target namespace under its final name.
 */
import { AgentError } from '../../core/errors';
import { noRecords, type Records } from '../../core/records';
import * as sys from '../../sys';
import { configureSide, inNetns, type SideConfig } from '../kernel/vwire';
import { PAYLOAD, TYPE } from '../common';
import type { CreateArgs, DeviceTarget, TunnelDataplane } from '../tunnel/dataplane';
import { paramIp, paramPort, type End, type Underlay } from '../tunnel/params';
import { parseVni, randomVni, vniFits } from './vni';

export const VXLAN_PORT = 4789;
/** Outer IPv4/IPv6 + UDP + VXLAN + inner Ethernet headers. */
export const VXLAN_OVERHEAD_V4 = 54;
export const VXLAN_OVERHEAD_V6 = 74;

export interface VxlanLocal {
  /** Chosen by the serving end; the requesting end learns it from the answer. */
  vni?: number;
}

export interface VxlanPeer {
  ip: string;
  port: number;
  vni?: number;
}

export interface VxlanDevice {
  target: DeviceTarget;
  side: SideConfig;
  mtu: number | undefined;
  vni: number;
  peer: VxlanPeer;
  ifindex: number;
}

export interface VxlanDataplaneOptions {
  underlay: Underlay;
  port?: number;
  /** `conn:<id>` per connection end, for a restarted agent (adopted or reaped at `expires`). */
  records?: Records<VxlanRecord>;
}

export interface VxlanRecord {
  expires: number;
  local: VxlanLocal;
  device: VxlanDevice;
}

/** Deletes the device a record describes, if it is still there under its name. */
async function unmake(d: VxlanDevice): Promise<void> {
  let ns: sys.Netns;
  try {
    ns = sys.openNetns(d.target.netns);
  } catch {
    return; // the namespace is gone, and the device with it
  }
  try {
    const rtnl = sys.Rtnl.for(ns);
    const link = await sys.getLink(rtnl, d.ifindex);
    if (link && link.name === d.target.ifname) await sys.deleteLink(rtnl, link.index);
  } finally {
    ns.close();
  }
}

/** The reaper for VXLAN records (StateStore kind options). */
export const vxlanReaper = {
  expiresOf: (r: VxlanRecord) => r.expires,
  reap: (_key: string, r: VxlanRecord) => unmake(r.device),
};

export function vxlanDataplane(opts: VxlanDataplaneOptions): TunnelDataplane<VxlanLocal, VxlanPeer, VxlanDevice> {
  const port = opts.port ?? VXLAN_PORT;
  const used = new Set<number>();
  const records = opts.records ?? noRecords<VxlanRecord>();

  const make = (vni: number, peer: VxlanPeer, target: DeviceTarget, mtu: number | undefined, side: SideConfig): Promise<VxlanDevice> =>
    inNetns(target.netns, async (ns) => {
      let link: sys.LinkInfo;
      try {
        link = await sys.createVxlan(sys.Rtnl.for(sys.hostNetns()), {
          name: target.ifname,
          vni,
          local: opts.underlay.ip,
          remote: peer.ip,
          port,
          ns,
          mtu,
          up: true,
        });
      } catch (err) {
        if ((err as { code?: string }).code === 'EEXIST') {
          throw new AgentError('ALREADY_EXISTS', `VXLAN ${target.ifname} (VNI ${vni}): the interface or the VNI already exists on this host`, { cause: err });
        }
        throw AgentError.wrap(err, `create VXLAN ${target.ifname}`, 'DATAPLANE');
      }
      try {
        await configureSide({ netns: ns, ifname: target.ifname }, link.index, side);
      } catch (err) {
        await sys.deleteLink(sys.Rtnl.for(ns), link.index).catch(() => {});
        throw AgentError.wrap(err, `configure VXLAN ${target.ifname}`, 'DATAPLANE');
      }
      return { target, side, mtu, vni, peer, ifindex: link.index };
    });

  return {
    type: TYPE.VXLAN,
    payload: PAYLOAD.ETHERNET,
    overhead: { v4: VXLAN_OVERHEAD_V4, v6: VXLAN_OVERHEAD_V6 },

    async allocate(end, offered) {
      if (end === 'src') return {};
      const src = paramIp(offered?.parameters, 'src_ip');
      const dst = opts.underlay.ip;
      const carried = offered?.parameters?.['vni'];
      if (carried) {
        const v = parseVni(carried);
        if (vniFits(v, src, dst) && !used.has(v)) {
          used.add(v);
          return { vni: v };
        }
      }
      for (;;) {
        const v = randomVni(src, dst);
        if (!used.has(v)) {
          used.add(v);
          return { vni: v };
        }
      }
    },
    release(local) {
      if (local.vni !== undefined) used.delete(local.vni);
    },
    advertise(local, end: End) {
      const out: Record<string, string> = { [`${end}_ip`]: opts.underlay.ip, [`${end}_port`]: String(port) };
      if (local.vni !== undefined) out['vni'] = String(local.vni);
      return out;
    },
    peerOf(params, end: End) {
      const peer: VxlanPeer = { ip: paramIp(params, `${end}_ip`), port: paramPort(params, `${end}_port`) };
      if (peer.port !== port) {
        throw new AgentError('INVALID_ARGUMENT', `mechanism parameter ${end}_port: VXLAN peers must use UDP port ${port}, got ${peer.port}`);
      }
      // The requester reads the VNI the server chose; the server validates one it is offered.
      if (end === 'dst' || params['vni']) peer.vni = parseVni(params['vni']);
      return peer;
    },

    async create({ local, peer, target, mtu, side }: CreateArgs<VxlanLocal, VxlanPeer>) {
      const vni = local.vni ?? peer.vni;
      if (vni === undefined) throw new AgentError('INVALID_ARGUMENT', 'VXLAN: no vni in the answer');
      return make(vni, peer, target, mtu, side);
    },

    async update(device, local, peer, mtu) {
      const vni = local.vni ?? peer.vni ?? device.vni;
      const newMtu = mtu ?? device.mtu;
      if (device.peer.ip !== peer.ip || device.vni !== vni) {
        await unmake(device);
        Object.assign(device, await make(vni, peer, device.target, newMtu, device.side));
      } else if (newMtu !== undefined && newMtu !== device.mtu) {
        await inNetns(device.target.netns, (ns) => sys.setMtu(sys.Rtnl.for(ns), device.ifindex, newMtu));
        device.mtu = newMtu;
      }
    },

    remove: unmake,

    async adopt(id) {
      const r = records.claim(`conn:${id}`);
      if (!r) return undefined;
      const present = await inNetns(r.device.target.netns, async (ns) => {
        const link = await sys.getLink(sys.Rtnl.for(ns), r.device.target.ifname);
        if (link) r.device.ifindex = link.index;
        return !!link;
      }).catch(() => false);
      if (!present || (r.local.vni !== undefined && used.has(r.local.vni))) {
        await unmake(r.device).catch(() => {});
        records.delete(`conn:${id}`);
        return undefined;
      }
      if (r.local.vni !== undefined) used.add(r.local.vni);
      return { local: r.local, device: r.device };
    },

    persist(id, local, device, expires) {
      records.put(`conn:${id}`, { expires, local, device });
    },

    forget(id) {
      records.delete(`conn:${id}`);
    },

    describe(device) {
      return { type: TYPE.VXLAN, ifname: device.target.ifname, netns: device.target.netns, vni: device.vni, remote: device.peer.ip, port };
    },
  };
}
