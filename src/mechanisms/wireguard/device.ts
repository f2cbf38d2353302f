// SPDX-License-Identifier: Apache-2.0
/**
 * One WireGuard device per connection, behind one interface with two
 * implementations:
 *
 *  - {@link WireguardGo}: a supervised `wireguard-go` child process (userspace,
 *    TUN). Used when the kernel has no WireGuard (the test hosts).
 *  - {@link KernelWireguard}: a kernel `wireguard` link configured over
 *    generic netlink. Used only when {@link kernelWireguardSupported} says so.
 *
 * Lifecycle for one connection (both implementations):
 *   1. create(tempName)  in the HOST namespace under a globally unique
 *      temporary name ({@link tempWireguardName}: 'nsmwg' + 10 hex). The UDP
 *      socket is opened here and stays here for the device's whole life.
 *   2. configure(cfg)    private key, listen port, exactly one peer with
 *      endpoint, AllowedIPs 0.0.0.0/0 and ::/0, PersistentKeepalive 10 s
 *      (NSM §5.2). May be called again (refresh) with the same keys.
 *   3. move(ns, name, {mtu, up})  sets the MTU (before the move), moves the
 *      link into `ns` renaming it to `name`, sets it up. May be called again:
 *      to another namespace, or to the same one (a rename in place, no move:
 *      a device made ahead can wait, down, where it will likely be needed;
 *      moving a link between namespaces costs an RCU barrier, ~20 ms).
 *   4. delete()          removes link, process and UAPI socket. Idempotent.
 *
 * wireguard-go specifics (verified on wireguard-go 0.0.20220316):
 *  - The UAPI socket is /var/run/wireguard/<tempName>.sock on the shared
 *    filesystem and KEEPS the temporary name after the link is renamed and
 *    moved. `wg show` lists devices by socket name, so it shows every device
 *    as `interface: nsmwg…` (from any namespace); info().hostName is that
 *    name, info().name / info().netns where the link really is.
 *  - The process is started as a direct child with WG_PROCESS_FOREGROUND=1 and
 *    argv [name] only: it takes ANY argument (even '--help') as an interface
 *    name, so no flags are ever passed and the name is validated first.
 *  - SIGTERM makes it remove the TUN and the socket; it is killed by PID only.
 *  - If the process dies while not being deleted, the supervisor starts a new
 *    one under the same temporary name, re-applies the same configuration
 *    (same keys, port, peer), moves/renames it into the same namespace with
 *    the same MTU and state, then runs the `afterRestart` hook (the caller
 *    re-adds addresses and routes: they died with the old link) and emits
 *    'restarted'.
 *
 * Events (both implementations emit only what applies):
 *   'spawned'    ({ pid })                     a wireguard-go process started
 *   'exited'     ({ pid, code, signal, expected })
 *   'restarted'  ({ pid, ms, restarts })       device is back and configured
 *   'failed'     (AgentError)                  gave up restarting
 *   'deleted'    ()
 *
 * Errors are AgentErrors: INVALID_INTERFACE_NAME, INVALID_ARGUMENT (keys,
 * ports, endpoint), ALREADY_EXISTS (name taken in the host ns / socket in
 * use / target name taken in the target ns), FAILED_PRECONDITION (wrong
 * lifecycle order), DATAPLANE (process or kernel failure),
 * UNSUPPORTED_MECHANISM (kernel WireGuard missing).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { closeSync, existsSync, openSync, readFileSync, unlinkSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import { FlagsNew, putString, putU32, rt, type GenericNetlinkSocket } from 'netlink';
import { AgentError } from '../../core/errors';
import {
  Rtnl,
  SysError,
  deleteLink,
  getLink,
  hostNetns,
  liveArgv,
  moveLink,
  openNetns,
  renameLink,
  sameNetns,
  setLinkUp,
  setMtu,
  validateIfName,
  withNetns,
  type Netns,
} from '../../sys';
import { IFLA, IFLA_INFO, ifinfo } from '../../sys/link';
import { validatePrivateKey, validatePublicKey } from './keys';
import { UAPI_PORT_IN_USE, UapiError, uapiAlive, uapiGet, uapiSet, uapiSocketPath } from './uapi';

/** NSM §5.2. */
export const WG_PERSISTENT_KEEPALIVE = 10;
export const WG_ALLOWED_IPS: readonly string[] = ['0.0.0.0/0', '::/0'];
/** WireGuard overhead to subtract from the underlay MTU (NSM §5.2). */
export const WG_OVERHEAD_V4 = 60;
export const WG_OVERHEAD_V6 = 80;
export const TEMP_NAME_PREFIX = 'nsmwg';

export interface WireguardPeerConfig {
  /** base64 public key of the other side. */
  publicKey: string;
  /** 'ip:port' or '[ipv6]:port' of the other side (from the mechanism). */
  endpoint: string;
}

export interface WireguardConfig {
  /** base64 private key of this side (fresh per connection, kept across refreshes). */
  privateKey: string;
  listenPort: number;
  /** Absent: no peer yet (a device made ahead of the answer that names the peer). */
  peer?: WireguardPeerConfig;
  /** Default {@link WG_PERSISTENT_KEEPALIVE}. */
  persistentKeepalive?: number;
  /** Default {@link WG_ALLOWED_IPS}. */
  allowedIps?: string[];
}

export interface MoveOptions {
  /** Set before the move; e.g. underlay MTU − {@link wireguardMtu}. */
  mtu?: number;
  /** Set the link up after the move (default true). */
  up?: boolean;
}

export type WireguardState = 'new' | 'running' | 'restarting' | 'failed' | 'deleted';

export interface WireguardDeviceInfo {
  impl: 'wireguard-go' | 'kernel';
  state: WireguardState;
  /** Temporary host-ns name; for wireguard-go also the UAPI socket name that `wg show` prints. */
  hostName: string;
  /** Current link name (hostName until moved). */
  name: string;
  /** Path of the namespace the link was moved to (undefined: host ns). */
  netns?: string;
  /** ifindex in the current namespace, if known. */
  ifindex?: number;
  /** wireguard-go only. */
  pid?: number;
  uapiSocket?: string;
  restarts: number;
  listenPort?: number;
  peerPublicKey?: string;
  mtu?: number;
}

/**
 * What a restarted agent needs to take a device back ({@link WireguardGo.adopt}) or to remove
 * it ({@link reapWireguard}): names, process, configuration and placement. Holds the private
 * key: stored only in the agent's state directory (mode 0700).
 */
export interface WireguardSnapshot {
  impl: 'wireguard-go' | 'kernel';
  hostName: string;
  /** wireguard-go's PID. */
  pid?: number;
  cfg?: WireguardConfig;
  /** Namespace file the link was moved to (undefined: still in the host namespace). */
  netns?: string;
  /** The link's name there. */
  name: string;
  move?: Required<MoveOptions>;
}

export interface WireguardDevice extends EventEmitter {
  /** Creates the device in the host ns under `name` (default: a fresh temp name). */
  create(name?: string): Promise<void>;
  configure(cfg: WireguardConfig): Promise<void>;
  move(target: Netns, newName: string, options?: MoveOptions): Promise<void>;
  /** Idempotent; never throws for an already-gone device. */
  delete(): Promise<void>;
  info(): WireguardDeviceInfo;
  snapshot(): WireguardSnapshot;
}

/** 'nsmwg' + 10 random hex chars (15 chars = IFNAMSIZ-1): globally unique in practice. */
export function tempWireguardName(): string {
  return TEMP_NAME_PREFIX + randomBytes(5).toString('hex');
}

/** Tunnel MTU for an underlay MTU (NSM §5.2: −60 for IPv4, −80 for IPv6 underlay). */
export function wireguardMtu(underlayMtu: number, underlayFamily: 4 | 6): number {
  return underlayMtu - (underlayFamily === 4 ? WG_OVERHEAD_V4 : WG_OVERHEAD_V6);
}

/**
 * Interface names acceptable to both the kernel and wireguard-go's argv:
 * the kernel rules, plus no leading '-' (would look like a flag) and only
 * [A-Za-z0-9_.-] (it becomes a file name under /var/run/wireguard).
 */
export function validateWireguardName(name: string): void {
  try {
    validateIfName(name);
  } catch (err) {
    throw new AgentError('INVALID_INTERFACE_NAME', err instanceof Error ? err.message : String(err));
  }
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(name)) {
    throw new AgentError('INVALID_INTERFACE_NAME', `interface name '${name}' must match [A-Za-z0-9_][A-Za-z0-9_.-]*`);
  }
}

/** Validates a configuration; throws INVALID_ARGUMENT. */
export function validateConfig(cfg: WireguardConfig): void {
  validatePrivateKey(cfg.privateKey);
  if (cfg.peer) validatePublicKey(cfg.peer.publicKey);
  if (!Number.isInteger(cfg.listenPort) || cfg.listenPort < 1 || cfg.listenPort > 65535) {
    throw new AgentError('INVALID_ARGUMENT', `bad WireGuard listen port ${cfg.listenPort}`);
  }
}

function toAgentError(err: unknown, context: string): AgentError {
  if (err instanceof SysError && err.code === 'EEXIST') return new AgentError('ALREADY_EXISTS', `${context}: ${err.message}`, { cause: err });
  if (err instanceof SysError && err.code === 'EINVAL' && err.syscall === 'RTM_NEWLINK') {
    return new AgentError('INVALID_INTERFACE_NAME', `${context}: ${err.message}`, { cause: err });
  }
  return err instanceof AgentError ? err : AgentError.wrap(err, context, 'DATAPLANE');
}

/**
 * True if configure() failed because the listen port it set is bound by another socket
 * (wireguard-go: UAPI errno -98; kernel: EADDRINUSE from generic netlink). The device is
 * left without a UDP socket and takes another port in a new configure().
 */
export function isListenPortTaken(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof UapiError) return e.errno === UAPI_PORT_IN_USE;
    if (e instanceof SysError) return e.code === 'EADDRINUSE';
  }
  return false;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A private handle on the same namespace (the caller may close theirs). */
function dupNetns(ns: Netns): Netns {
  return openNetns(`/proc/self/fd/${ns.fd}`);
}

/** Host-ns temp names in use by this process (wireguard-go and kernel). */
const liveNames = new Map<string, WireguardDevice>();

/** Every device of this process that is not deleted (for `wg show` mapping, shutdown). */
export function liveWireguardDevices(): WireguardDeviceInfo[] {
  return [...liveNames.values()].map((d) => d.info());
}

// ---------------------------------------------------------------------------
// wireguard-go

export interface WireguardGoOptions {
  /** Executable; default 'wireguard-go' from PATH. */
  binary?: string;
  /** How long to wait for the UAPI socket after spawning (default 3000 ms). */
  startTimeoutMs?: number;
  /** Restart the process when it dies unexpectedly (default true). */
  restart?: boolean;
  /** Consecutive failed restart attempts before giving up (default 5). */
  maxRestartAttempts?: number;
  /**
   * Awaited after a restart once the link is back in place (moved, renamed,
   * MTU, up), before 'restarted' is emitted: re-add addresses and routes.
   * Gets the new info() (ifindex in the target ns).
   */
  afterRestart?: (info: WireguardDeviceInfo) => Promise<void> | void;
  /** wireguard-go LOG_LEVEL (default 'error'). */
  logLevel?: 'silent' | 'error' | 'verbose';
}

/** wireguard-go's output goes to a file next to its UAPI socket, never to a pipe (see spawn). */
function logPath(hostName: string): string {
  return uapiSocketPath(hostName).replace(/\.sock$/, '.log');
}

/** True if `pid` is a live (not zombie) wireguard-go serving `hostName`. */
export function isWireguardGo(pid: number | undefined, hostName: string): boolean {
  const argv = pid ? liveArgv(pid) : undefined;
  return !!argv && argv[1] === hostName && (argv[0] ?? '').endsWith('wireguard-go');
}

/** SIGTERM to a wireguard-go that is not our child (SIGKILL after 2 s); waits until it is gone. */
async function reapProcess(pid: number, hostName: string): Promise<void> {
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

/** How often an adopted wireguard-go (not our child: no exit event) is checked for life. */
const ADOPTED_POLL_MS = 50;

/**
 * Removes what a snapshot describes, for a device nobody takes back: the process (by PID,
 * only if it is still that wireguard-go), its socket and log, and the link (kernel WireGuard,
 * or a wireguard-go link that outlived its process). Never throws for what is already gone.
 */
export async function reapWireguard(snap: WireguardSnapshot): Promise<void> {
  if (snap.impl === 'wireguard-go' && snap.pid) await reapProcess(snap.pid, snap.hostName);
  if (snap.impl === 'wireguard-go') {
    for (const f of [uapiSocketPath(snap.hostName), logPath(snap.hostName)]) {
      try {
        unlinkSync(f);
      } catch {
        /* gone */
      }
    }
  }
  let ns: Netns | undefined;
  try {
    ns = snap.netns ? openNetns(snap.netns) : undefined;
  } catch {
    return; // its namespace is gone, and the link with it
  }
  try {
    const rtnl = Rtnl.for(ns ?? hostNetns());
    const link = await getLink(rtnl, snap.netns ? snap.name : snap.hostName);
    if (link) await deleteLink(rtnl, link.index).catch(() => {});
  } finally {
    ns?.close();
  }
}

export class WireguardGo extends EventEmitter implements WireguardDevice {
  /**
   * Takes back a device a previous run of the agent left (kill -9, upgrade): the process is
   * not our child, so it is watched by PID. If it died meanwhile (its TUN went with it), the
   * device is made again under the same name with the same keys, port, peer and placement,
   * exactly as after a crash of a child. Throws (NETNS_NOT_FOUND, DATAPLANE, ...) if it cannot
   * be taken back; the caller then reaps the snapshot.
   */
  static async adopt(snap: WireguardSnapshot, options: WireguardGoOptions = {}): Promise<WireguardGo> {
    validateWireguardName(snap.hostName);
    if (liveNames.has(snap.hostName)) throw new AgentError('ALREADY_EXISTS', `WireGuard device ${snap.hostName} already exists in this agent`);
    const d = new WireguardGo(options);
    d.hostName = snap.hostName;
    d.linkName = snap.netns ? snap.name : snap.hostName;
    if (snap.cfg) d.cfg = { ...snap.cfg, ...(snap.cfg.peer ? { peer: { ...snap.cfg.peer } } : {}) };
    if (snap.netns) {
      try {
        d.target = openNetns(snap.netns);
        d.targetPath = snap.netns;
      } catch (err) {
        throw new AgentError('NETNS_NOT_FOUND', `adopt ${snap.hostName}: namespace ${snap.netns} is gone`, { cause: err });
      }
      d.moveOpts = snap.move ?? { mtu: 0, up: true };
    }
    liveNames.set(snap.hostName, d);
    try {
      if (isWireguardGo(snap.pid, snap.hostName) && (await uapiAlive(d.socketPath, 500))) {
        const link = await getLink(Rtnl.for(d.target ?? hostNetns()), d.linkName);
        if (!link) throw new AgentError('DATAPLANE', `adopt ${snap.hostName}: link ${d.linkName} not found`);
        d.ifindex = link.index;
        d.adoptedPid = snap.pid;
        d.state = 'running';
        d.watchAdopted();
        return d;
      }
      // The process is gone, and its TUN with it: make it again, as a restart would.
      if (isWireguardGo(snap.pid, snap.hostName)) process.kill(snap.pid!, 'SIGKILL');
      d.state = 'restarting';
      await d.restart();
      if ((d.state as WireguardState) !== 'running') throw new AgentError('DATAPLANE', `adopt ${snap.hostName}: wireguard-go could not be started again`);
      return d;
    } catch (err) {
      d.stopWatching();
      liveNames.delete(snap.hostName);
      d.target?.close();
      throw toAgentError(err, `adopt WireGuard device ${snap.hostName}`);
    }
  }

  private state: WireguardState = 'new';
  private hostName = '';
  private child: ChildProcess | undefined;
  private cfg: WireguardConfig | undefined;
  private target: Netns | undefined;
  private linkName = '';
  private ifindex: number | undefined;
  private moveOpts: Required<MoveOptions> | undefined;
  private restarts = 0;
  private deleting = false;
  private restartLoop: Promise<void> | undefined;
  /** A wireguard-go left by a previous run of the agent: not a child, watched by PID. */
  private adoptedPid: number | undefined;
  /** The path the target namespace was named by (this.target is a private duplicate). */
  private targetPath: string | undefined;
  private poll: NodeJS.Timeout | undefined;

  constructor(private readonly options: WireguardGoOptions = {}) {
    super();
  }

  snapshot(): WireguardSnapshot {
    const s: WireguardSnapshot = { impl: 'wireguard-go', hostName: this.hostName, name: this.linkName };
    const pid = this.info().pid;
    if (pid !== undefined) s.pid = pid;
    if (this.cfg) s.cfg = { ...this.cfg };
    if (this.targetPath) s.netns = this.targetPath;
    if (this.moveOpts) s.move = { ...this.moveOpts };
    return s;
  }

  private watchAdopted(): void {
    this.stopWatching();
    this.poll = setInterval(() => {
      const pid = this.adoptedPid;
      if (pid === undefined || isWireguardGo(pid, this.hostName)) return;
      this.stopWatching();
      this.adoptedPid = undefined;
      this.emit('exited', { pid, code: null, signal: null, expected: this.deleting });
      if (this.deleting || this.state !== 'running' || this.options.restart === false) return;
      this.state = 'restarting';
      this.ifindex = undefined;
      this.restartLoop = this.restart().finally(() => {
        this.restartLoop = undefined;
      });
    }, ADOPTED_POLL_MS);
    this.poll.unref();
  }

  private stopWatching(): void {
    if (this.poll) clearInterval(this.poll);
    this.poll = undefined;
  }

  info(): WireguardDeviceInfo {
    const i: WireguardDeviceInfo = {
      impl: 'wireguard-go',
      state: this.state,
      hostName: this.hostName,
      name: this.linkName,
      restarts: this.restarts,
    };
    if (this.hostName !== '') i.uapiSocket = uapiSocketPath(this.hostName);
    if (this.target !== undefined) i.netns = this.target.path;
    if (this.ifindex !== undefined) i.ifindex = this.ifindex;
    if (this.child?.pid !== undefined && this.child.exitCode === null && this.child.signalCode === null) i.pid = this.child.pid;
    else if (this.adoptedPid !== undefined) i.pid = this.adoptedPid;
    if (this.cfg !== undefined) {
      i.listenPort = this.cfg.listenPort;
      if (this.cfg.peer) i.peerPublicKey = this.cfg.peer.publicKey;
    }
    if (this.moveOpts !== undefined && this.moveOpts.mtu > 0) i.mtu = this.moveOpts.mtu;
    return i;
  }

  private get socketPath(): string {
    return uapiSocketPath(this.hostName);
  }

  async create(name: string = tempWireguardName()): Promise<void> {
    if (this.state !== 'new') throw new AgentError('FAILED_PRECONDITION', `wireguard device already created (${this.hostName})`);
    validateWireguardName(name);
    if (liveNames.has(name)) throw new AgentError('ALREADY_EXISTS', `WireGuard device ${name} already exists in this agent`);
    liveNames.set(name, this); // claim before the awaits below
    try {
      if (await uapiAlive(uapiSocketPath(name))) {
        throw new AgentError('ALREADY_EXISTS', `WireGuard device ${name} already exists (UAPI socket in use)`);
      }
      if ((await getLink(Rtnl.for(hostNetns()), name)) !== undefined) {
        throw new AgentError('ALREADY_EXISTS', `a link named ${name} already exists in the host namespace`);
      }
      this.hostName = name;
      this.linkName = name;
      this.removeStaleSocket();
      await this.spawn();
      this.state = 'running';
    } catch (err) {
      liveNames.delete(name);
      if (this.child !== undefined) await this.kill();
      this.hostName = '';
      throw toAgentError(err, `create WireGuard device ${name}`);
    }
  }

  async configure(cfg: WireguardConfig): Promise<void> {
    if (this.state !== 'running' && this.state !== 'restarting') {
      throw new AgentError('FAILED_PRECONDITION', `configure: WireGuard device is ${this.state}`);
    }
    validateConfig(cfg);
    await this.apply(cfg, this.state === 'running' ? this.cfg : undefined);
    this.cfg = { ...cfg, ...(cfg.peer ? { peer: { ...cfg.peer } } : {}) };
  }

  /**
   * Sets `cfg` over UAPI. Given what the process already has (`current`), an unchanged private
   * key and listen port are not sent again: wireguard-go re-binds its UDP sockets on every
   * listen_port it is given while up, which costs milliseconds on the connect path (the peer is
   * added to a device that is already up) and drops what arrives in between.
   */
  private async apply(cfg: WireguardConfig, current?: WireguardConfig): Promise<void> {
    try {
      await uapiSet(this.socketPath, {
        privateKey: current?.privateKey === cfg.privateKey ? undefined : cfg.privateKey,
        listenPort: current?.listenPort === cfg.listenPort ? undefined : cfg.listenPort,
        replacePeers: true,
        peers: cfg.peer
          ? [
              {
                publicKey: cfg.peer.publicKey,
                endpoint: cfg.peer.endpoint,
                persistentKeepalive: cfg.persistentKeepalive ?? WG_PERSISTENT_KEEPALIVE,
                replaceAllowedIps: true,
                allowedIps: cfg.allowedIps ?? [...WG_ALLOWED_IPS],
              },
            ]
          : [],
      });
    } catch (err) {
      throw toAgentError(err, `configure WireGuard device ${this.hostName}`);
    }
  }

  async move(target: Netns, newName: string, options: MoveOptions = {}): Promise<void> {
    if (this.state !== 'running') throw new AgentError('FAILED_PRECONDITION', `move: WireGuard device is ${this.state}`);
    validateWireguardName(newName);
    const opts = { mtu: options.mtu ?? 0, up: options.up ?? true };
    const from = this.target !== undefined ? { ns: this.target, name: this.linkName } : undefined;
    const own = from && sameNetns(from.ns, target) ? from.ns : dupNetns(target);
    try {
      await this.placeLink(own, newName, opts, 0, from);
    } catch (err) {
      if (own !== from?.ns) own.close();
      throw toAgentError(err, `move WireGuard device ${this.hostName} to ${target.path} as ${newName}`);
    }
    if (from && own !== from.ns) from.ns.close();
    this.target = own;
    this.targetPath = target.path;
    this.linkName = newName;
    this.moveOpts = opts;
  }

  /**
   * Puts the link in `target` as `newName` with the MTU and state of `opts`: from the host ns
   * (a new device, or a restarted process's new TUN), from another namespace, or, when `from`
   * is `target` itself, a rename in place (no namespace change: a device made ahead where it was
   * going to be needed skips the move's ~20 ms RCU barrier). Retries EEXIST for `retryMs` (an
   * old link still going away).
   */
  private async placeLink(
    target: Netns,
    newName: string,
    opts: Required<MoveOptions>,
    retryMs: number,
    from: { ns: Netns; name: string } = { ns: hostNetns(), name: this.hostName },
  ): Promise<void> {
    const here = Rtnl.for(from.ns);
    const there = Rtnl.for(target);
    const inPlace = sameNetns(from.ns, target);
    // A link waiting down where it is wanted (a spare): MTU, name and state in one message (the
    // kernel renames before it applies the flags), instead of five round trips. Sent from the
    // pool (`slow`): raising a TUN link takes the kernel ~1 ms here (IPv6 and multicast setup,
    // notifiers), which on the event loop delayed what the connect does meanwhile (measured: the
    // requesting end's prepare ran it just as its Request was to be sent).
    if (inPlace && newName !== from.name && this.ifindex !== undefined && this.moveOpts?.up === false) {
      try {
        await there.request(
          rt.MessageType.NEWLINK,
          (out) => {
            ifinfo(out, this.ifindex!, opts.up ? true : undefined);
            if (opts.mtu > 0) out.push(IFLA.MTU, putU32(opts.mtu));
            out.push(IFLA.IFNAME, putString(newName));
          },
          { subject: from.name, slow: true },
        );
        return;
      } catch (err) {
        if (err instanceof SysError && err.code === 'EEXIST') {
          throw new AgentError('ALREADY_EXISTS', `a link named ${newName} already exists in ${target.path}`, { cause: err });
        }
        // anything else (e.g. a stale ifindex): the long way below finds out
      }
    }
    const link = await getLink(here, from.name);
    if (link === undefined) throw new AgentError('DATAPLANE', `link ${from.name} not found in ${inPlace ? target.path : 'its namespace'}`);
    if (opts.mtu > 0) await setMtu(here, link.index, opts.mtu);
    if (inPlace && newName === from.name) {
      this.ifindex = link.index;
    } else {
      if (inPlace && link.up) await setLinkUp(here, link.index, false); // the kernel renames only links that are down
      const deadline = Date.now() + retryMs;
      for (;;) {
        if ((await getLink(there, newName)) === undefined) {
          try {
            await (inPlace ? renameLink(here, link.index, newName) : moveLink(here, link.index, target, newName));
            break;
          } catch (err) {
            if (!(err instanceof SysError && err.code === 'EEXIST') || Date.now() >= deadline) throw err;
          }
        } else if (Date.now() >= deadline) {
          throw new AgentError('ALREADY_EXISTS', `a link named ${newName} already exists in ${target.path}`);
        }
        await sleep(5);
      }
      const moved = inPlace ? link : await getLink(there, newName);
      if (moved === undefined) throw new AgentError('DATAPLANE', `link ${newName} vanished after the move`);
      this.ifindex = moved.index;
    }
    if (opts.up) await setLinkUp(there, this.ifindex, true);
  }

  async delete(): Promise<void> {
    if (this.state === 'deleted') return;
    this.deleting = true;
    this.stopWatching();
    await this.kill();
    await this.restartLoop?.catch(() => {});
    await this.kill(); // a restart may have spawned one more
    this.removeStaleSocket();
    this.target?.close();
    this.target = undefined;
    if (liveNames.get(this.hostName) === this) liveNames.delete(this.hostName);
    this.state = 'deleted';
    this.ifindex = undefined;
    this.emit('deleted');
  }

  /** Current state over UAPI (handshake time, counters). */
  async status(): Promise<ReturnType<typeof uapiGet>> {
    return uapiGet(this.socketPath);
  }

  // --- process management -------------------------------------------------

  private removeStaleSocket(): void {
    // Only called while no process of ours serves this name.
    try {
      if (this.hostName !== '' && existsSync(this.socketPath)) unlinkSync(this.socketPath);
      if (this.hostName !== '' && existsSync(logPath(this.hostName))) unlinkSync(logPath(this.hostName));
    } catch {
      /* best effort */
    }
  }

  /** Spawns wireguard-go and waits until its UAPI socket answers. */
  private async spawn(): Promise<void> {
    const name = this.hostName;
    validateWireguardName(name); // never let anything flag-like reach argv
    // Detached (own session: a terminal's Ctrl-C or a signal to the agent's process group does
    // not reach it) and writing to a file, never to a pipe: the vWire must outlive an agent
    // that is killed or restarted, and Go exits on EPIPE when fd 1 or 2 is a closed pipe.
    const log = logPath(name);
    const out = openSync(log, 'w', 0o600);
    let child: ChildProcess;
    try {
      child = spawn(this.options.binary ?? 'wireguard-go', [name], {
        env: { ...process.env, WG_PROCESS_FOREGROUND: '1', LOG_LEVEL: this.options.logLevel ?? 'error' },
        stdio: ['ignore', out, out],
        detached: true,
      });
    } finally {
      closeSync(out);
    }
    child.unref(); // an agent stopping without cleanup exits while its devices live on
    this.child = child;
    this.adoptedPid = undefined;
    this.stopWatching();
    const output = (): string => {
      try {
        return readFileSync(log, 'utf8').slice(-4096).trim();
      } catch {
        return '';
      }
    };
    let exited = false;
    let spawnError: Error | undefined;
    child.on('error', (err) => {
      spawnError = err;
      exited = true;
    });
    child.on('exit', (code, signal) => {
      exited = true;
      this.onExit(child, code, signal);
    });
    const timeout = this.options.startTimeoutMs ?? 3000;
    const deadline = Date.now() + timeout;
    for (;;) {
      if (exited) {
        const why = spawnError ? spawnError.message : `exited (${child.exitCode ?? child.signalCode})`;
        throw new AgentError('DATAPLANE', `wireguard-go ${name} ${why}: ${output()}`);
      }
      if (existsSync(this.socketPath) && (await uapiAlive(this.socketPath, 200))) break;
      if (Date.now() >= deadline) {
        await this.kill();
        throw new AgentError('DATAPLANE', `wireguard-go ${name}: UAPI socket did not appear within ${timeout} ms: ${output()}`);
      }
      await sleep(5);
    }
    if (child.pid !== undefined) this.emit('spawned', { pid: child.pid });
  }

  /** SIGTERM (removes TUN and socket), then SIGKILL after 2 s; waits for the exit. By PID only. */
  private async kill(): Promise<void> {
    if (this.adoptedPid !== undefined) {
      await reapProcess(this.adoptedPid, this.hostName);
      this.adoptedPid = undefined;
    }
    const child = this.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
    await gone;
    clearTimeout(timer);
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    const expected = this.deleting || this.state === 'new' || child !== this.child;
    this.emit('exited', { pid: child.pid, code, signal, expected });
    if (expected || this.state !== 'running' || this.options.restart === false) return;
    this.state = 'restarting';
    this.ifindex = undefined;
    this.restartLoop = this.restart().finally(() => {
      this.restartLoop = undefined;
    });
  }

  private async restart(): Promise<void> {
    const t0 = Date.now();
    const max = this.options.maxRestartAttempts ?? 5;
    let lastErr: unknown;
    for (let attempt = 0; attempt < max && !this.deleting; attempt++) {
      if (attempt > 0) await sleep(Math.min(100 * 2 ** attempt, 2000));
      if (this.deleting) return;
      try {
        this.removeStaleSocket();
        await this.spawn();
        if (this.deleting) return;
        if (this.cfg !== undefined) await this.apply(this.cfg);
        if (this.target !== undefined && this.moveOpts !== undefined) {
          await this.placeLink(this.target, this.linkName, this.moveOpts, 1000);
        }
        if (this.deleting) return;
        this.restarts++;
        this.state = 'running';
        if (this.options.afterRestart) await this.options.afterRestart(this.info());
        this.emit('restarted', { pid: this.child?.pid, ms: Date.now() - t0, restarts: this.restarts });
        return;
      } catch (err) {
        lastErr = err;
        this.state = 'restarting';
        await this.kill();
      }
    }
    if (this.deleting) return;
    this.state = 'failed';
    this.emit('failed', toAgentError(lastErr, `restart wireguard-go ${this.hostName}`));
  }
}

// ---------------------------------------------------------------------------
// kernel WireGuard (generic netlink). Only used when supported; not exercised
// on the test hosts (no WireGuard in their kernel) beyond detection.

let wireguardFamily: Promise<number | undefined> | undefined;

/**
 * The id of the 'wireguard' generic-netlink family, undefined if the kernel has none (module
 * neither built in nor loadable). Cached. Asked by name, which loads the module on demand.
 */
function wireguardFamilyId(): Promise<number | undefined> {
  wireguardFamily ??= (async () => {
    const nl = await import('netlink');
    const sock = nl.createGenericNetlink();
    try {
      const reply = await sock.ctrlRequest(nl.genl.Commands.GET_FAMILY, { familyName: 'wireguard' });
      return reply[0]?.familyId;
    } catch {
      return undefined;
    } finally {
      sock.socket.close();
    }
  })();
  return wireguardFamily;
}

/** True if the kernel has the 'wireguard' generic-netlink family (module built in or loaded). Cached. */
export async function kernelWireguardSupported(): Promise<boolean> {
  return (await wireguardFamilyId()) !== undefined;
}

function sockaddr(endpoint: string): Buffer {
  const m = /^(?:\[([^\]]+)\]|([\d.]+)):(\d+)$/.exec(endpoint);
  if (m === null) throw new AgentError('INVALID_ARGUMENT', `bad WireGuard endpoint '${endpoint}'`);
  const host = m[1] ?? m[2] ?? '';
  const port = Number(m[3]);
  if (isIPv4(host)) {
    const b = Buffer.alloc(16);
    b.writeUInt16LE(2, 0); // AF_INET
    b.writeUInt16BE(port, 2);
    host.split('.').forEach((o, i) => b.writeUInt8(Number(o), 4 + i));
    return b;
  }
  throw new AgentError('INVALID_ARGUMENT', `kernel WireGuard: IPv6 endpoints not implemented ('${endpoint}')`);
}

/**
 * WG_CMD_SET_DEVICE of <linux/wireguard.h> (enum wg_cmd: GET_DEVICE 0, SET_DEVICE 1). The
 * netlink package numbers its Commands from 1, so its setDevice() sends GET_DEVICE + 2, which
 * the kernel rejects with EOPNOTSUPP: the command is sent here by number instead.
 */
export const WG_CMD_SET_DEVICE = 1;
/** Set on nested attributes: the wireguard family validates strictly (nla_parse_nested). */
export const NLA_F_NESTED = 0x8000;
/** <linux/wireguard.h> attribute numbers used here. */
const WGDEVICE_A = { IFNAME: 2, PRIVATE_KEY: 3, FLAGS: 5, LISTEN_PORT: 6, PEERS: 8 } as const;
const WGPEER_A = { PUBLIC_KEY: 1, FLAGS: 3, ENDPOINT: 4, PERSISTENT_KEEPALIVE_INTERVAL: 5, ALLOWEDIPS: 9 } as const;
const WGALLOWEDIP_A = { FAMILY: 1, IPADDR: 2, CIDR_MASK: 3 } as const;
const WGDEVICE_F_REPLACE_PEERS = 1;
const WGPEER_F_REPLACE_ALLOWEDIPS = 2;

/** What WG_CMD_SET_DEVICE sets here: keys, port and the peers (replacing the existing ones). */
export interface KernelDeviceConfig {
  privateKey: Buffer;
  listenPort: number;
  peers: { publicKey: Buffer; endpoint?: Buffer; persistentKeepalive: number; allowedIps: { family: 2 | 10; addr: Buffer; cidr: number }[] }[];
}

function nla(type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length;
  const b = Buffer.alloc((len + 3) & ~3);
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  payload.copy(b, 4);
  return b;
}
const nested = (type: number, parts: Buffer[]): Buffer => nla(type | NLA_F_NESTED, Buffer.concat(parts));
const u8 = (v: number): Buffer => Buffer.from([v]);
const u16 = (v: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return b;
};
const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
};

/**
 * The attributes of WG_CMD_SET_DEVICE for `ifname`. Every nested attribute (the peer list, each
 * peer, its allowed-IP list, each allowed IP) carries NLA_F_NESTED: the kernel's wireguard family
 * parses them with nla_parse_nested(), which rejects them with EINVAL without it (the netlink
 * package never sets the flag).
 */
export function setDeviceAttrs(ifname: string, cfg: KernelDeviceConfig): Buffer {
  const peers = cfg.peers.map((p, i) =>
    nested(i + 1, [
      nla(WGPEER_A.PUBLIC_KEY, p.publicKey),
      nla(WGPEER_A.FLAGS, u32(WGPEER_F_REPLACE_ALLOWEDIPS)),
      ...(p.endpoint ? [nla(WGPEER_A.ENDPOINT, p.endpoint)] : []),
      nla(WGPEER_A.PERSISTENT_KEEPALIVE_INTERVAL, u16(p.persistentKeepalive)),
      nested(
        WGPEER_A.ALLOWEDIPS,
        p.allowedIps.map((a, j) => nested(j + 1, [nla(WGALLOWEDIP_A.FAMILY, u16(a.family)), nla(WGALLOWEDIP_A.IPADDR, a.addr), nla(WGALLOWEDIP_A.CIDR_MASK, u8(a.cidr))])),
      ),
    ]),
  );
  return Buffer.concat([
    nla(WGDEVICE_A.IFNAME, Buffer.from(`${ifname}\0`)),
    nla(WGDEVICE_A.PRIVATE_KEY, cfg.privateKey),
    nla(WGDEVICE_A.FLAGS, u32(WGDEVICE_F_REPLACE_PEERS)),
    nla(WGDEVICE_A.LISTEN_PORT, u16(cfg.listenPort)),
    nested(WGDEVICE_A.PEERS, peers),
  ]);
}

/** Sets `ifname`'s keys, port and peers over the WireGuard generic-netlink family. */
export async function setKernelDevice(sock: GenericNetlinkSocket, familyId: number, ifname: string, cfg: KernelDeviceConfig): Promise<void> {
  await sock.request(familyId, WG_CMD_SET_DEVICE, 1, [setDeviceAttrs(ifname, cfg)]);
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
      throw new AgentError('NETNS_NOT_FOUND', `adopt ${snap.hostName}: namespace ${snap.netns} is gone`, { cause: err });
    }
    const name = snap.netns ? snap.name : snap.hostName;
    const link = await getLink(Rtnl.for(ns ?? hostNetns()), name);
    if (!link) {
      ns?.close();
      throw new AgentError('DATAPLANE', `adopt ${snap.hostName}: link ${name} not found`);
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
      await host.request(
        rt.MessageType.NEWLINK,
        (out) => {
          ifinfo(out, 0);
          out.push(IFLA.IFNAME, putString(name));
          out.push(IFLA.LINKINFO, (info) => info.push(IFLA_INFO.KIND, putString('wireguard')));
        },
        { flags: FlagsNew.CREATE | FlagsNew.EXCL, subject: name },
      );
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
    const family = await wireguardFamilyId();
    if (family === undefined) throw new AgentError('UNSUPPORTED_MECHANISM', 'kernel WireGuard is not available');
    const nl = await import('netlink');
    // The genetlink socket must live where the link is (the namespace of the calling thread).
    const sock = this.ns === undefined ? nl.createGenericNetlink() : withNetns(this.ns, () => nl.createGenericNetlink());
    try {
      await setKernelDevice(sock, family, this.linkName, {
        privateKey: validatePrivateKey(cfg.privateKey),
        listenPort: cfg.listenPort,
        peers: cfg.peer
          ? [
              {
                publicKey: validatePublicKey(cfg.peer.publicKey),
                endpoint: sockaddr(cfg.peer.endpoint),
                persistentKeepalive: cfg.persistentKeepalive ?? WG_PERSISTENT_KEEPALIVE,
                allowedIps: [
                  { family: 2, addr: Buffer.alloc(4), cidr: 0 },
                  { family: 10, addr: Buffer.alloc(16), cidr: 0 },
                ],
              },
            ]
          : [],
      });
    } catch (err) {
      throw toAgentError(err, `configure WireGuard link ${this.linkName}`);
    } finally {
      sock.socket.close();
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

/**
 * The implementation to use on this host: kernel WireGuard if the genetlink
 * family exists (and `preferUserspace` is not set), else wireguard-go.
 */
export async function createWireguardDevice(options: WireguardGoOptions & { preferUserspace?: boolean } = {}): Promise<WireguardDevice> {
  if (options.preferUserspace !== true && (await kernelWireguardSupported())) return new KernelWireguard();
  return new WireguardGo(options);
}
