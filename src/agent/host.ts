/**
 * Host preparation at start: which WireGuard to use (kernel or wireguard-go), the underlay
 * other hosts reach this agent's tunnels at, and the host settings WireGuard needs (inotify
 * instances for wireguard-go, the WireGuard ports kept out of the ephemeral range).
 */
import { AgentError } from '../core/errors';
import type { Logger } from '../core/log';
import type { Underlay } from '../mechanisms/tunnel/params';
import { RESERVED_PORTS_SYSCTL, reservedPortsWith } from '../mechanisms/wireguard/ports';
import { kernelWireguardSupported } from '../mechanisms/wireguard/kernel';
import * as sys from '../sys';
import type { AgentConfig } from './config';
import { resolveUnderlay } from './underlay';

export interface PreparedHost {
  /** Where other hosts reach this agent's tunnels; undefined when it has no underlay. */
  underlay: Underlay | undefined;
  /** Kernel WireGuard when the kernel has it (or agent.yaml asks for it), else wireguard-go. */
  wireguardKernel: boolean;
}

/**
 * Chooses the WireGuard implementation and finds the underlay. Without an underlay, remote
 * mechanisms are off, unless tunnelIP is explicit or the agent listens on TCP: then it is an error.
 */
export async function prepareHost(cfg: AgentConfig, log: Logger): Promise<PreparedHost> {
  const impl = cfg.wireguard.implementation;
  const kernelHas = impl === 'wireguard-go' ? false : await kernelWireguardSupported();
  if (impl === 'kernel' && !kernelHas) {
    throw new AgentError('FAILED_PRECONDITION', `${cfg.file}: wireguard.implementation: kernel, but this kernel has no WireGuard`);
  }
  if (!kernelHas) checkInotifyLimit(cfg, log);
  const explicit = cfg.tunnelIP !== 'auto';
  try {
    const underlay = await resolveUnderlay(cfg.tunnelIP);
    reserveWireguardPorts(cfg, log);
    return { underlay, wireguardKernel: kernelHas };
  } catch (err) {
    if (explicit || cfg.listen.tcp) throw err;
    log.info('no underlay: remote mechanisms are off', { reason: AgentError.from(err).message });
    return { underlay: undefined, wireguardKernel: kernelHas };
  }
}

/**
 * Each wireguard-go takes one inotify instance (its UAPI listener), and the kernel allows
 * fs.inotify.max_user_instances per user (128 by default): beyond that, WireGuard vWires
 * fail with "too many open files". Said once at start, with the fix.
 */
function checkInotifyLimit(cfg: AgentConfig, log: Logger): void {
  try {
    const limit = Number(sys.getSysctl(sys.hostNetns(), 'fs.inotify.max_user_instances'));
    const wanted = cfg.wireguard.portMax - cfg.wireguard.portMin + 1 + cfg.wireguard.spares;
    if (limit < wanted) {
      log.warn('fs.inotify.max_user_instances limits wireguard-go vWires (one instance each); raise it with sysctl', {
        limit,
        wireguardPorts: wanted,
      });
    }
  } catch {
    /* no /proc/sys here: nothing to say */
  }
}

/**
 * Takes the WireGuard port range out of the kernel's ephemeral ports in the agent's namespace,
 * where the devices' sockets are. A spare's port is set ahead and bound only when the spare is
 * raised for a connection; another program's outgoing UDP socket that took the port meanwhile
 * would leave that device without a socket (the allocator's probe cannot see the future).
 * Added to what is reserved already and kept after the agent stops (reserving takes nothing
 * from anyone: explicit binds to these ports still work). Not fatal where /proc/sys is read-only.
 */
function reserveWireguardPorts(cfg: AgentConfig, log: Logger): void {
  const { portMin, portMax } = cfg.wireguard;
  try {
    const ns = sys.hostNetns();
    const wanted = reservedPortsWith(sys.getSysctl(ns, RESERVED_PORTS_SYSCTL), portMin, portMax);
    if (wanted === undefined) return;
    sys.setSysctl(ns, RESERVED_PORTS_SYSCTL, wanted);
    log.info('WireGuard ports reserved from the ephemeral range', { sysctl: RESERVED_PORTS_SYSCTL, ports: `${portMin}-${portMax}` });
  } catch (err) {
    log.warn('cannot reserve the WireGuard ports from the ephemeral range; another program may take a spare\'s port', {
      sysctl: RESERVED_PORTS_SYSCTL,
      error: err,
    });
  }
}
