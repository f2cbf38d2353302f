// SPDX-License-Identifier: Apache-2.0
/**
 * What a previous run of the agent left (after kill -9 or an upgrade), described by a
 * {@link WireguardSnapshot}: whether a device is taken back as it is, started again, or removed
 * ({@link wireguardGoAdoption}, a pure decision over what the probes found), and the removal itself
 * ({@link reapWireguard}). The devices' adopt() functions probe and act on the decision.
 */
import { unlinkSync } from 'node:fs';
import { AgentError } from '../../core/errors';
import { Rtnl, deleteLink, getLink, hostNetns, liveArgv, openNetns, type Netns } from '../../sys';
import { sleep, type WireguardSnapshot } from './device';
import { uapiSocketPath, wireguardGoLogPath } from './uapi';

/** What the probes found of a leftover wireguard-go device whose namespace still exists. */
export interface LeftoverState {
  /** The recorded PID is still a wireguard-go serving the snapshot's host name. */
  process: boolean;
  /** Its UAPI socket answers (probed only while `process`). */
  uapi: boolean;
  /** The link is where the snapshot placed it (probed only while `uapi`). */
  link: boolean;
}

export type Adoption =
  /** Running and in place: watched again as it is. */
  | { take: 'as-is' }
  /**
   * wireguard-go whose process is gone (its TUN went with it) or no longer answers: started
   * again under the same name with the same keys, port, peer and placement, as after a crash
   * of a child; `kill`: the process that no longer answers is killed first.
   */
  | { take: 'respawn'; kill: boolean }
  /** Cannot be taken back: adopt() throws and the caller reaps the snapshot. */
  | { take: 'no' };

/**
 * The decision for a leftover wireguard-go device, given what was found of it. A device whose
 * namespace is gone is never taken back (adopt throws NETNS_NOT_FOUND before probing); a kernel
 * WireGuard link is taken back if it is still there (the kernel keeps it configured).
 */
export function wireguardGoAdoption(found: LeftoverState): Adoption {
  if (found.process && found.uapi) return found.link ? { take: 'as-is' } : { take: 'no' };
  return { take: 'respawn', kill: found.process };
}

/** Why adopt() did not take `snap` back: its namespace is gone (with `cause`), or its link. */
export function refusal(snap: WireguardSnapshot, what: 'netns' | 'link', cause?: unknown): AgentError {
  if (what === 'netns') return new AgentError('NETNS_NOT_FOUND', `adopt ${snap.hostName}: namespace ${snap.netns} is gone`, { cause });
  return new AgentError('DATAPLANE', `adopt ${snap.hostName}: link ${snap.netns ? snap.name : snap.hostName} not found`);
}

/** What {@link reapWireguard} removes for a snapshot. */
export interface ReapPlan {
  /** A wireguard-go to stop, by PID, if it is still that wireguard-go. */
  pid?: number;
  /** wireguard-go's UAPI socket and log. */
  files: string[];
  /** The link: by name, in the namespace it was moved to (undefined: the host namespace). */
  link: { netns?: string; name: string };
}

export function reapPlanOf(snap: WireguardSnapshot): ReapPlan {
  const plan: ReapPlan = { files: [], link: { name: snap.netns ? snap.name : snap.hostName } };
  if (snap.netns) plan.link.netns = snap.netns;
  if (snap.impl === 'wireguard-go') {
    if (snap.pid) plan.pid = snap.pid;
    plan.files.push(uapiSocketPath(snap.hostName), wireguardGoLogPath(snap.hostName));
  }
  return plan;
}

/** True if `pid` is a live (not zombie) wireguard-go serving `hostName`. */
export function isWireguardGo(pid: number | undefined, hostName: string): boolean {
  const argv = pid ? liveArgv(pid) : undefined;
  return !!argv && argv[1] === hostName && (argv[0] ?? '').endsWith('wireguard-go');
}

/** SIGTERM to a wireguard-go that is not our child (SIGKILL after 2 s); waits until it is gone. */
export async function reapProcess(pid: number, hostName: string): Promise<void> {
  if (!isWireguardGo(pid, hostName)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + 2000;
  while (isWireguardGo(pid, hostName)) {
    if (Date.now() > deadline) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await sleep(10);
  }
}

/**
 * Removes what a snapshot describes, for a device nobody takes back: the process (by PID,
 * only if it is still that wireguard-go), its socket and log, and the link (kernel WireGuard,
 * or a wireguard-go link that outlived its process). Never throws for what is already gone.
 */
export async function reapWireguard(snap: WireguardSnapshot): Promise<void> {
  const plan = reapPlanOf(snap);
  if (plan.pid !== undefined) await reapProcess(plan.pid, snap.hostName);
  for (const f of plan.files) {
    try {
      unlinkSync(f);
    } catch {
      /* gone */
    }
  }
  let ns: Netns | undefined;
  try {
    ns = plan.link.netns ? openNetns(plan.link.netns) : undefined;
  } catch {
    return; // its namespace is gone, and the link with it
  }
  try {
    const rtnl = Rtnl.for(ns ?? hostNetns());
    const link = await getLink(rtnl, plan.link.name);
    if (link) await deleteLink(rtnl, link.index).catch(() => {});
  } finally {
    ns?.close();
  }
}
